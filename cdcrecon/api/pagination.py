"""Limit/offset pagination with the guide's envelope and strict parameter checks.

DRF's LimitOffsetPagination silently replaces a bad ``limit`` with the default and clamps
one above the cap; an API client then cannot tell that it got less than it asked for.  Here
a ``limit`` or ``offset`` that is not a whole number in range is a 400 naming the parameter.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response


class EnvelopePagination(LimitOffsetPagination):
    """``{"<results_key>": [...], "total": n, "limit": l, "offset": o}``."""

    results_key = "results"
    default_limit = 100
    max_limit = 1000
    template = None  # no page links in the browsable API

    def _parameter(
        self, request: Request, name: str, default: int, lowest: int, highest: int | None
    ) -> int:
        raw = request.query_params.get(name)
        if raw is None:
            return default
        text = raw.strip()
        bounds = f"from {lowest} to {highest}" if highest is not None else f">= {lowest}"
        message = f"'{name}' must be a whole number {bounds}, not {raw[:40]!r}."
        if not text.isascii() or not text.isdigit() or len(text) > 18:
            raise exceptions.ValidationError({name: [message]})
        value = int(text)
        if value < lowest or (highest is not None and value > highest):
            raise exceptions.ValidationError({name: [message]})
        return value

    def get_limit(self, request: Request) -> int:
        return self._parameter(
            request, self.limit_query_param, self.default_limit, 1, self.max_limit
        )

    def get_offset(self, request: Request) -> int:
        return self._parameter(request, self.offset_query_param, 0, 0, None)

    def check_parameters(self, request: Request) -> None:
        """Refuse bad paging parameters before any query runs."""
        self.get_limit(request)
        self.get_offset(request)

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any]:
        self.request = request
        self.limit = self.get_limit(request)
        self.offset = self.get_offset(request)
        self.count = self.get_count(queryset)
        if self.count == 0 or self.offset >= self.count:
            return []
        return list(queryset[self.offset : self.offset + self.limit])

    def get_paginated_response(self, data: Any) -> Response:
        return Response(
            {
                self.results_key: data,
                "total": self.count,
                "limit": self.limit,
                "offset": self.offset,
            }
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": [self.results_key, "total", "limit", "offset"],
            "properties": {
                self.results_key: schema,
                "total": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "How many match the filters.",
                },
                "limit": {"type": "integer", "minimum": 1, "maximum": self.max_limit},
                "offset": {"type": "integer", "minimum": 0},
            },
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": self.limit_query_param,
                "required": False,
                "in": "query",
                "description": f"Page size (default {self.default_limit}, at most "
                f"{self.max_limit}); a value out of range is a 400.",
                "schema": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": self.max_limit,
                    "default": self.default_limit,
                },
            },
            {
                "name": self.offset_query_param,
                "required": False,
                "in": "query",
                "description": "How many matching items to skip.",
                "schema": {"type": "integer", "minimum": 0, "default": 0},
            },
        ]


class JobPagination(EnvelopePagination):
    results_key = "jobs"
    default_limit = 100
    max_limit = 1000


class MismatchPagination(EnvelopePagination):
    results_key = "mismatches"
    default_limit = 1000
    max_limit = 10000
