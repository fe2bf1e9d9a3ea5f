"""What the API's viewsets share: their schema tag, the documented error answers, and the
paging check that runs before any query."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse
from rest_framework.request import Request
from rest_framework.response import Response

from reconciliation.api.serializers import (
    ErrorSerializer,
)

TAG = "reconciliation"


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    meaning = {
        400: "Invalid request: a body field or query parameter is wrong (named in `fields`).",
        401: "No or invalid credentials (send `Authorization: Bearer <token>`).",
        403: "Authenticated, but without the permission this endpoint needs.",
        404: "No such job or mismatch.",
        415: "The body is not `application/json`.",
    }
    return {code: OpenApiResponse(ErrorSerializer, description=meaning[code]) for code in codes}


class PagedListMixin:
    """Check paging parameters before filtering, so a bad limit never costs a query."""

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self.paginator.check_parameters(request)  # type: ignore[attr-defined]
        return super().list(request, *args, **kwargs)  # type: ignore[misc]
