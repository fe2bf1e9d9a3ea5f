"""Every API error as ``{"error": code, "detail": message, "fields": {...}}``.

``error`` is a stable machine-readable code (``invalid_request``, ``not_authenticated``,
``permission_denied``, ``not_found``, ``method_not_allowed``, ``unsupported_media_type``,
``parse_error``, ``job_already_running``, ``already_resolved``, ...), ``detail`` a sentence
for a human, ``fields`` maps request fields (body or query parameters) to their problems.
Some errors add context beside these three keys (a 409 names the running job's ``job_id``).

Django's own 404 and 500 pages are JSON too for everything outside the admin
(``handler404``/``handler500`` in cdcrecon/urls.py).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
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


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
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
