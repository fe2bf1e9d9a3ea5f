"""Every API error as ``{"error": code, "detail": message, "fields": {...}}``."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def error_response(
    code: str, detail: str, http_status: int, fields: dict[str, Any] | None = None
) -> Response:
    return Response({"error": code, "detail": detail, "fields": fields or {}}, status=http_status)


def _flatten(detail: Any) -> dict[str, Any]:
    if isinstance(detail, dict):
        return {key: value for key, value in detail.items()}
    return {}


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            message = _first_message(value)
            return message if key == "non_field_errors" else f"{key}: {message}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        return error_response(
            "invalid_request",
            _first_message(exc.detail),
            status.HTTP_400_BAD_REQUEST,
            _flatten(exc.detail),
        )
    assert isinstance(exc, exceptions.APIException)
    code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
    response.data = {"error": code, "detail": _first_message(exc.detail), "fields": {}}
    return response
