"""Every API error as ``{"error": code, "detail": message, "fields": {...}}``.

``error`` is a stable machine-readable code (``invalid_request``, ``not_authenticated``,
``permission_denied``, ``not_found``, ``method_not_allowed``, ``unsupported_media_type``,
``parse_error``, ``job_already_running``, ``already_resolved``, ...), ``detail`` a sentence
for a human, ``fields`` maps request fields (body or query parameters) to their problems.
Some errors add context beside these three keys (a 409 names the running job's ``job_id``).

Domain errors (``BadKey``, ``RepairFailed``, ``StoreUnavailable``, ...) carry no HTTP status:
each app's API layer maps its exception types once with ``map_domain_error`` and the handler
below answers them; a view may simply let them propagate.

Outside DRF views, every error Django answers itself is JSON too, except under ``/admin/``
which keeps its HTML pages: ``handler400`` (Django's size, header and host checks, which
happen before any view), ``handler403``, ``handler404``, ``handler500`` and
``CSRF_FAILURE_VIEW``; ``JsonErrorMiddleware`` turns any remaining non-JSON error response
(a 405 from ``require_GET``, a 413 from a too-large body) into the envelope.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from django.core.exceptions import (
    DisallowedHost,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import csrf, defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApiError(exceptions.APIException):
    """An error with its own code, HTTP status, field problems and extra context."""

    def __init__(
        self,
        code: str,
        detail: str,
        http_status: int,
        fields: dict[str, Any] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail=detail, code=code)
        self.status_code = http_status
        self.error_code = code
        self.fields = fields or {}
        self.extra = extra


def error_body(code: str, detail: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": code, "detail": detail, "fields": fields or {}}


def error_response(
    code: str, detail: str, http_status: int, fields: dict[str, Any] | None = None
) -> Response:
    return Response(error_body(code, detail, fields), status=http_status)


def _plain(detail: Any) -> Any:
    """ErrorDetail trees as plain lists/dicts of strings (keys as strings)."""
    if isinstance(detail, dict):
        return {str(key): _plain(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_plain(value) for value in detail]
    return str(detail)


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            message = _first_message(value)
            return message if key == "non_field_errors" else f"{key}: {message}"
        return "Invalid request."
    if isinstance(detail, list):
        return _first_message(detail[0]) if detail else "Invalid request."
    return str(detail)


# -- domain errors -----------------------------------------------------------------------------

StatusRule = int | Callable[[Any], int]
_DOMAIN_ERRORS: dict[type[BaseException], tuple[StatusRule, str]] = {}


def map_domain_error(
    exc_type: type[BaseException], http_status: StatusRule, code: str = "invalid_request"
) -> None:
    """Answer ``exc_type`` (and its subclasses) with ``http_status`` (a number, or a function
    of the exception).  The body's ``error`` is the exception's own ``code`` attribute when
    it has one, else ``code``; ``fields`` its ``fields`` attribute, if any."""
    _DOMAIN_ERRORS[exc_type] = (http_status, code)


def status_for(exc: BaseException) -> int | None:
    """The HTTP status the API gives a domain error (None: not a mapped domain error)."""
    for klass in type(exc).__mro__:
        if klass in _DOMAIN_ERRORS:
            rule = _DOMAIN_ERRORS[klass][0]
            return rule if isinstance(rule, int) else rule(exc)
    return None


def domain_error_response(exc: BaseException) -> Response | None:
    """The JSON response for a mapped domain error; None for anything else."""
    http_status = status_for(exc)
    if http_status is None:
        return None
    default_code = next(_DOMAIN_ERRORS[k][1] for k in type(exc).__mro__ if k in _DOMAIN_ERRORS)
    code = getattr(exc, "code", None)
    detail = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
    fields = getattr(exc, "fields", None)
    return error_response(
        code if isinstance(code, str) and code else default_code,
        str(detail),
        http_status,
        fields if isinstance(fields, dict) else None,
    )


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    mapped = domain_error_response(exc)
    if mapped is not None:
        return mapped
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a real bug: Django's handler500 answers (JSON, see below)
    if isinstance(exc, ApiError):
        response.data = {
            **error_body(exc.error_code, str(exc.detail), exc.fields),
            **exc.extra,
        }
        return response
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        fields = _plain(detail)
        response.data = error_body("invalid_request", _first_message(detail), fields)
        response.status_code = status.HTTP_400_BAD_REQUEST
        return response
    assert isinstance(exc, exceptions.APIException)
    codes = exc.get_codes()
    code = codes if isinstance(codes, str) else exc.default_code
    response.data = error_body(code, _first_message(exc.detail))
    return response


def _wants_html(request: HttpRequest) -> bool:
    return request.path.startswith("/admin/")


def _json_error(code: str, detail: str, http_status: int) -> JsonResponse:
    return JsonResponse(error_body(code, detail), status=http_status)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler400: Django's own checks (body size, field count, host, headers), as JSON.

    A body over DATA_UPLOAD_MAX_MEMORY_SIZE (or too many fields/files) is a 413.
    """
    if _wants_html(request):
        return defaults.bad_request(request, exception)  # type: ignore[arg-type]
    if isinstance(exception, RequestDataTooBig | TooManyFieldsSent | TooManyFilesSent):
        return _json_error(
            "payload_too_large",
            f"The request is too large: {exception}",
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exception, DisallowedHost):
        return _json_error("disallowed_host", "This host name is not served here.", 400)
    if isinstance(exception, SuspiciousOperation):
        return _json_error("bad_request", f"The request was refused: {exception}", 400)
    return _json_error("bad_request", "The request could not be understood.", 400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler403: JSON outside the admin."""
    if _wants_html(request):
        return defaults.permission_denied(request, exception)  # type: ignore[arg-type]
    return _json_error(
        "permission_denied", str(exception or "") or "You may not do this.", HTTPStatus.FORBIDDEN
    )


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a session-authenticated API call without its CSRF token."""
    if _wants_html(request):
        return csrf.csrf_failure(request, reason)
    return _json_error(
        "csrf_failed",
        f"CSRF check failed: {reason or 'no valid token'}. Send the X-CSRFToken header with "
        "session authentication, or use a Bearer token.",
        HTTPStatus.FORBIDDEN,
    )


_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    411: "length_required",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    429: "throttled",
}


def _is_json(response: HttpResponse) -> bool:
    return str(response.get("Content-Type", "")).startswith("application/json")


class JsonErrorMiddleware:
    """The outermost middleware: any 4xx/5xx answer outside the admin that is not JSON yet
    (a 405 from ``require_GET``, a page from a third-party view) becomes the envelope, with
    the same status and headers (``Allow``, ``Retry-After`` ...)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code < 400 or _wants_html(request) or _is_json(response):
            return response
        if getattr(response, "streaming", False):
            return response
        code = _CODES.get(
            response.status_code, "server_error" if response.status_code >= 500 else "bad_request"
        )
        try:
            phrase = HTTPStatus(response.status_code).phrase
        except ValueError:
            phrase = "Error"
        detail = f"{phrase} ({request.method} {request.path})."
        if response.status_code == 405 and response.get("Allow"):
            detail = f"Method {request.method} is not allowed here; use {response['Allow']}."
        response.content = json.dumps(error_body(code, detail)).encode()
        response["Content-Type"] = "application/json"
        if response.has_header("Content-Length"):
            response["Content-Length"] = str(len(response.content))
        return response


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: JSON for the API (and any other non-admin path), HTML for the admin."""
    if _wants_html(request):
        return defaults.page_not_found(request, exception)  # type: ignore[arg-type]
    return JsonResponse(
        error_body("not_found", f"No such endpoint: {request.method} {request.path}"),
        status=404,
    )


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: JSON for the API, HTML for the admin."""
    if _wants_html(request):
        return defaults.server_error(request)
    return JsonResponse(
        error_body("server_error", "An unexpected error occurred; it has been logged."),
        status=500,
    )
