"""API tokens: django-rest-knox, sent as ``Authorization: Bearer <token>``.

knox keeps only a SHA-512 digest of each token (and its first 15 characters, to find the
row), so a copy of the database cannot be used to call the API.  Tokens expire after
``API_TOKEN_TTL_HOURS`` (``REST_KNOX["TOKEN_TTL"]``; 0: never).  They are listed and revoked
in the admin (*Knox, Auth tokens*) and issued by ``manage.py create_api_token USER``
(``-r``/``--reset``: the user's earlier tokens are revoked, as DRF's ``drf_create_token -r``
regenerates its one token).

Every failed token attempt counts with django-axes, under the pseudo-username
``(API token)`` and the client's IP: after ``AXES_FAILURE_LIMIT`` failures that IP's token
attempts are refused (429, ``locked_out``) for the cool-off time, even with a valid token.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_ip_address, get_cool_off
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication
from knox.models import AuthToken
from knox.settings import knox_settings
from knox.signals import token_expired
from rest_framework import exceptions, status
from rest_framework.authentication import get_authorization_header
from rest_framework.request import Request

from cdcrecon.security import API_TOKEN_USERNAME

SCHEME = "Bearer"
API_CREDENTIALS = {"username": API_TOKEN_USERNAME}


class LockedOut(exceptions.APIException):
    """Too many failed token attempts from this client: refused until the cool-off ends."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "locked_out"
    default_detail = "Too many failed authentication attempts from this address."


def issue_token(user: Any, ttl: dt.timedelta | None | object = ...) -> tuple[AuthToken, str]:
    """A new token for ``user``: its row and the token itself (shown once, never stored).

    ``ttl`` defaults to knox's TOKEN_TTL (API_TOKEN_TTL_HOURS); ``None`` never expires.
    """
    expiry = knox_settings.TOKEN_TTL if ttl is ... else ttl
    instance, token = AuthToken.objects.create(user=user, expiry=expiry)
    return instance, token


def reset_token(user: Any, ttl: dt.timedelta | None | object = ...) -> tuple[AuthToken, str, int]:
    """Revoke every token ``user`` has and issue one new one, in one transaction: its row,
    the token itself (shown once) and how many earlier tokens were revoked."""
    with transaction.atomic():
        revoked, _ = AuthToken.objects.filter(user=user).delete()
        instance, token = issue_token(user, ttl)
    return instance, token, revoked


def _lockout_key(request: HttpRequest) -> str:
    return f"api-lockout:{get_client_ip_address(request)}"


def _may_be_locked_out(request: HttpRequest) -> bool:
    """Whether this client's address was locked out of the API: a hint kept in the shared
    cache when axes locks it, so a valid call costs no lockout query.  The database (axes)
    decides; an unreachable cache means asking it every time."""
    try:
        return bool(cache.get(_lockout_key(request)))
    except Exception:  # the cache is a hint only
        return True


def _remember_lockout(request: HttpRequest) -> None:
    cool_off = get_cool_off(request)
    try:
        cache.set(_lockout_key(request), True, int(cool_off.total_seconds()) if cool_off else None)
    except Exception:  # without the hint, the lock still holds for the failing calls
        pass


def _forget_lockout(request: HttpRequest) -> None:
    try:
        cache.delete(_lockout_key(request))
    except Exception:
        pass


def _django_request(request: Request | HttpRequest) -> HttpRequest:
    # axes marks the Django request (AxesMiddleware reads it), not DRF's wrapper.
    return getattr(request, "_request", request)  # type: ignore[no-any-return]


class BearerTokenAuthentication(TokenAuthentication):
    """knox tokens under the ``Bearer`` scheme, with django-axes counting the failures.

    Another scheme (``Token …``, ``Basic …``) is a 401 that names the Bearer scheme rather
    than being silently ignored.
    """

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:  # type: ignore[override]
        header = get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() != SCHEME.lower().encode():
            raise exceptions.AuthenticationFailed(
                f"Unsupported authorization scheme {header[0].decode(errors='replace')!r}: "
                f"send the token as 'Authorization: {SCHEME} <token>'."
            )
        django_request = _django_request(request)
        if _may_be_locked_out(django_request):
            if not AxesProxyHandler.is_allowed(django_request, API_CREDENTIALS):
                raise self._locked_out(django_request)
            _forget_lockout(django_request)  # lifted in the admin, or the cool-off ended
        try:
            return super().authenticate(request)  # type: ignore[no-any-return]
        except exceptions.AuthenticationFailed as exc:
            user_login_failed.send(
                sender=type(self), credentials=dict(API_CREDENTIALS), request=django_request
            )
            if getattr(django_request, "axes_locked_out", False):
                _remember_lockout(django_request)
                raise self._locked_out(django_request) from None
            detail = str(exc.detail)
            if detail == "Invalid token.":
                detail = "Invalid or expired token."
            raise exceptions.AuthenticationFailed(detail) from None

    @staticmethod
    def _locked_out(request: HttpRequest) -> LockedOut:
        # The middleware would replace the answer anyway; the view answers it itself.
        request.axes_locked_out = False  # type: ignore[attr-defined]
        cool_off = get_cool_off(request)
        seconds = int(cool_off.total_seconds()) if cool_off else None
        exc = LockedOut(
            "Too many failed authentication attempts from this address. "
            + (
                f"Try again in {seconds} seconds."
                if seconds
                else "An administrator must unlock it (admin: Axes, Access attempts)."
            )
        )
        exc.wait = seconds  # type: ignore[attr-defined]
        return exc

    def _cleanup_token(self, auth_token: Any) -> bool:
        """Refuse (and delete) this token once expired.  Unlike knox, the user's other
        tokens are not scanned on every call: that cost a query per request."""
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            username = auth_token.user.get_username()
            auth_token.delete()
            token_expired.send(sender=type(self), username=username, source="auth_token")
            return True
        return False

    def authenticate_header(self, request: Request) -> str:
        return SCHEME


class BearerTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """The OpenAPI security scheme of :class:`BearerTokenAuthentication`."""

    target_class = "cdcrecon.api.tokens.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return build_bearer_security_scheme_object(  # type: ignore[no-any-return]
            header_name="Authorization", token_prefix=SCHEME
        )
