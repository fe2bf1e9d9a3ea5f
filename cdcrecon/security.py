"""Production hardening: the parsing behind the security settings, and the lockout answer.

The settings themselves are in ``cdcrecon/settings.py`` (README, "Production"); this module
holds what they need that is more than one line:

- :func:`proxy_ssl_header` reads ``SECURE_PROXY_SSL_HEADER`` (``X-Forwarded-Proto,https``);
- :func:`token_ttl` turns ``API_TOKEN_TTL_HOURS`` into knox's ``TOKEN_TTL`` (0: never);
- :func:`redis_cache_url` derives the cache's Redis URL from the broker's (another database);
- :func:`lockout_response` is django-axes' answer once a username+IP is locked out: JSON
  ``{"error", "detail", "fields"}`` for the API, axes' own page for the admin login.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, JsonResponse

from cdcrecon.conf import BOOLEAN_WORDS

# The pseudo-username under which django-axes counts failed API token attempts (with the
# client's IP).  It contains characters Django usernames cannot, so it never names a user.
API_TOKEN_USERNAME = "(API token)"

_HEADER_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def read_flag(env: Any, name: str, default: bool) -> bool:
    """A true/false variable; unlike ``env.bool``, a typo (``ture``) stops start-up instead of
    silently reading as false, which for these settings would mean "insecure"."""
    raw = env.str(name, default="").strip().lower()
    if not raw:
        return default
    if raw not in BOOLEAN_WORDS:
        raise ImproperlyConfigured(f"{name}={raw!r} is not valid: expected true or false.")
    return BOOLEAN_WORDS[raw]


def proxy_ssl_header(value: str) -> tuple[str, str] | None:
    """``"X-Forwarded-Proto,https"`` as Django's ``("HTTP_X_FORWARDED_PROTO", "https")``.

    Empty means no TLS-terminating proxy (``None``).  The header may be given as sent
    (``X-Forwarded-Proto``) or as its ``request.META`` key (``HTTP_X_FORWARDED_PROTO``).
    """
    value = value.strip()
    if not value:
        return None
    header, sep, expected = (part.strip() for part in value.partition(","))
    if not sep or not header or not expected or not _HEADER_NAME.match(header):
        raise ImproperlyConfigured(
            f"SECURE_PROXY_SSL_HEADER={value!r} is not valid: expected 'Header-Name,value', "
            "e.g. 'X-Forwarded-Proto,https'."
        )
    meta_key = header.upper().replace("-", "_")
    if not meta_key.startswith("HTTP_"):
        meta_key = f"HTTP_{meta_key}"
    return meta_key, expected


def token_ttl(hours: float) -> dt.timedelta | None:
    """knox's TOKEN_TTL for ``API_TOKEN_TTL_HOURS``: 0 means tokens never expire."""
    if hours < 0:
        raise ImproperlyConfigured(
            f"API_TOKEN_TTL_HOURS={hours!r} is not valid: expected a number of hours >= 0 "
            "(0: tokens never expire)."
        )
    return dt.timedelta(hours=hours) if hours else None


def redis_cache_url(broker_url: str, database: int = 1) -> str:
    """The broker's Redis server with another database number, for the cache.

    A broker that is not Redis gives the local default ``redis://127.0.0.1:6379/<database>``.
    """
    parts = urlsplit(broker_url)
    if parts.scheme not in ("redis", "rediss"):
        return f"redis://127.0.0.1:6379/{database}"
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


def _is_api_request(request: HttpRequest) -> bool:
    return not request.path.startswith("/admin/")


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the answer to a locked-out username+IP.

    The API gets the house error shape with ``Retry-After`` (the cool-off); the admin login
    gets axes' own message, with the same status (``AXES_HTTP_RESPONSE_CODE``, 429).
    """
    from axes.helpers import get_cool_off, get_lockout_message
    from django.conf import settings

    status = int(getattr(settings, "AXES_HTTP_RESPONSE_CODE", 429))
    cool_off = get_cool_off(request)
    if not _is_api_request(request):
        return HttpResponse(get_lockout_message(), status=status, content_type="text/plain")
    until = (
        f" Try again in {int(cool_off.total_seconds())} seconds."
        if cool_off
        else " An administrator must unlock it (admin: Axes, Access attempts)."
    )
    response = JsonResponse(
        {
            "error": "locked_out",
            "detail": f"Too many failed authentication attempts from this address.{until}",
            "fields": {},
        },
        status=status,
    )
    if cool_off:
        response["Retry-After"] = str(int(cool_off.total_seconds()))
    return response
