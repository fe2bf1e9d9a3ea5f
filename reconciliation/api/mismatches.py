"""``GET /reconciliation/mismatches`` and resolving one: rows that differ, served fast.

The list reads ``values()`` and passes captured rows through as JSON text; deep pages fetch
their ids first; ``total`` comes from the trigger-kept counts when the filter allows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import psycopg
from cassandra import DriverException
from cassandra.cluster import NoHostAvailable
from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast
from drf_orjson_renderer.renderers import ORJSONRenderer
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import BrowsableAPIRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from cdcrecon.api.errors import ApiError
from cdcrecon.api.pagination import MismatchPagination
from cdcrecon.filters import FilterSetOnViewBackend
from reconciliation.api.common import TAG, PagedListMixin
from reconciliation.api.common import error_responses as _errors
from reconciliation.api.permissions import CanResolveMismatches, CanViewJobs
from reconciliation.api.serializers import (
    MISMATCH_FIELDS,
    ErrorSerializer,
    MismatchSerializer,
    RecheckResponseSerializer,
    ResolveConflictSerializer,
    ResolveResponseSerializer,
    ResolveSerializer,
    iso,
)
from reconciliation.connections import StoreUnavailable
from reconciliation.engine.keys import BadKey
from reconciliation.engine.schema import SchemaError
from reconciliation.filtersets import MismatchFilterSet
from reconciliation.jobs import (
    describe_failure,
)
from reconciliation.ledger import reads as ledger
from reconciliation.models import AlreadyResolved, Mismatch
from reconciliation.registry import TableNotFound, UnknownTable


class RawJsonField(TextField):
    """A jsonb column read as its JSON text and passed to orjson as is (``orjson.Fragment``).

    The mismatch list serves up to 10,000 captured rows a page; decoding them into Python
    and encoding them again was a third of a page's time.
    """

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Any:
        return None if value is None else orjson.Fragment(value)


# The list's columns: the captured rows as JSON text, everything else as values().
MISMATCH_LIST_VALUES: dict[str, Any] = {
    "cassandra_json": Cast("cassandra_data", RawJsonField()),
    "postgres_json": Cast("postgres_data", RawJsonField()),
}
MISMATCH_LIST_FIELDS = tuple(
    name for name in MISMATCH_FIELDS if name not in ("cassandra_data", "postgres_data")
)


# From this many pages deep, fetching a page's ids first beats reading every skipped row
# (measured on 1M rows: offset 50,000 went from ~60-175 ms to ~15-35 ms of SQL).
DEFERRED_JOIN_PAGES = 5


class PrecountedMismatchPagination(MismatchPagination):
    """``total`` from the filterset's trigger-kept counts when it has them (issue 11 point 9).

    An exact ``COUNT(*)`` over a million mismatches is most of a page's time; the counts in
    ``MismatchCount`` are exact for the same snapshot.  Other filters count the queryset.
    """

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any]:
        filterset = getattr(view, "filterset", None)
        self.precounted = filterset.precounted_total() if filterset is not None else None
        offset = self.get_offset(request)
        if offset < DEFERRED_JOIN_PAGES * self.get_limit(request):
            return super().paginate_queryset(queryset, request, view)
        # Deep pages: the page's ids from the index alone, then only those rows.
        ids = queryset.values_list("mismatch_id", flat=True)
        page = super().paginate_queryset(ids, request, view)
        rows = {row["mismatch_id"]: row for row in queryset.filter(mismatch_id__in=page)}
        return [rows[pk] for pk in page if pk in rows]

    def get_count(self, queryset: Any) -> int:
        if self.precounted is not None:
            return self.precounted
        return super().get_count(queryset)


@extend_schema(tags=[TAG])
class MismatchViewSet(PagedListMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Rows that differ between Cassandra and PostgreSQL, and their resolution."""

    # .values(): no model instances for up to 10,000 rows a page; ordered by the
    # detected_at index (newest first), mismatch_id breaking ties for stable pages.
    queryset = Mismatch.objects.order_by("-detected_at", "mismatch_id")
    serializer_class = MismatchSerializer
    filterset_class = MismatchFilterSet
    filter_backends = [FilterSetOnViewBackend]
    pagination_class = PrecountedMismatchPagination
    renderer_classes = [ORJSONRenderer, BrowsableAPIRenderer]
    permission_classes = [IsAuthenticated, CanViewJobs]
    lookup_field = "mismatch_id"
    lookup_url_kwarg = "mismatch_id"
    # Set per action (the stricter mutations budget): @action(..., throttle_scope="recheck").
    throttle_scope: str | None = None

    def get_permissions(self) -> Sequence[Any]:
        if self.action in {"resolve", "recheck"}:
            return [IsAuthenticated(), CanResolveMismatches()]
        return super().get_permissions()

    def get_queryset(self) -> QuerySet[Any]:
        if self.action == "list":
            return super().get_queryset().values(*MISMATCH_LIST_FIELDS, **MISMATCH_LIST_VALUES)
        return Mismatch.objects.select_related("resolved_by")

    @extend_schema(
        operation_id="list_mismatches",
        summary="List data mismatches",
        description="Newest first, with both sides' captured rows.",
        responses={200: MismatchSerializer(many=True), **_errors(400, 401, 403)},
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        operation_id="resolve_mismatch",
        summary="Resolve (or ignore) a mismatch",
        description="Close a PENDING mismatch as MANUAL_RESOLVED, AUTO_RESOLVED or IGNORED, "
        "recording who, when and why. A mismatch can be closed once: a second attempt is a 409 "
        "naming who closed it.",
        parameters=[OpenApiParameter("mismatch_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        request=ResolveSerializer,
        responses={
            200: ResolveResponseSerializer,
            **_errors(400, 401, 403, 404, 415),
            409: OpenApiResponse(
                ResolveConflictSerializer,
                description="Already resolved: `detail` says by whom and when.",
            ),
        },
        examples=[
            OpenApiExample(
                "Manual fix",
                value={
                    "resolution_status": "MANUAL_RESOLVED",
                    "resolution_notes": "Fixed by manual data sync",
                },
                request_only=True,
            )
        ],
    )
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def resolve(self, request: Request, mismatch_id: str | None = None) -> Response:
        mismatch = self.get_object()
        body = ResolveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            mismatch.resolve(
                request.user,
                body.validated_data["resolution_status"],
                body.validated_data["resolution_notes"],
            )
        except AlreadyResolved as exc:
            closed = exc.mismatch
            raise ApiError(
                "already_resolved",
                str(exc),
                status.HTTP_409_CONFLICT,
                resolution_status=closed.resolution_status,
                resolved_by=closed.resolved_by.get_username() if closed.resolved_by else None,
                resolved_at=iso(closed.resolved_at),
            ) from None
        except ValueError as exc:  # e.g. notes that are only whitespace
            field = "resolution_notes" if "notes" in str(exc) else "resolution_status"
            raise ApiError(
                "invalid_request", str(exc), status.HTTP_400_BAD_REQUEST, {field: [str(exc)]}
            ) from None
        return Response(
            {
                "status": "success",
                "mismatch": {
                    "mismatch_id": str(mismatch.mismatch_id),
                    "resolution_status": mismatch.resolution_status,
                    "resolved_at": iso(mismatch.resolved_at),
                },
            }
        )

    @extend_schema(
        operation_id="recheck_mismatch",
        summary="Re-check a mismatch now",
        description="Re-reads the key from Cassandra and PostgreSQL at once (read-only). "
        "Equal now: the mismatch closes as AUTO_RESOLVED, resolved by you (`closed`). Still "
        "different: the captured rows are refreshed (`still_different`, or `changed` when "
        "the rows changed); an IGNORED mismatch stays ignored while its rows are as they "
        "were, a resolved one reopens. A note names you either way.",
        parameters=[OpenApiParameter("mismatch_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        request=None,
        responses={
            200: RecheckResponseSerializer,
            **_errors(401, 403, 404),
            409: OpenApiResponse(
                ErrorSerializer, description="Table no longer registered, bad key or schema."
            ),
            502: OpenApiResponse(ErrorSerializer, description="A store could not be read."),
        },
    )
    @action(
        detail=True,
        methods=["post"],
        filter_backends=[],
        pagination_class=None,
        throttle_scope="recheck",
    )
    def recheck(self, request: Request, mismatch_id: str | None = None) -> Response:
        mismatch = self.get_object()
        try:
            outcome = ledger.recheck(mismatch, request.user)
        except (UnknownTable, TableNotFound, SchemaError, BadKey) as exc:
            raise ApiError("cannot_recheck", str(exc), status.HTTP_409_CONFLICT) from None
        except (StoreUnavailable, DriverException, NoHostAvailable, psycopg.Error) as exc:
            raise ApiError(
                "store_unavailable", describe_failure(exc), status.HTTP_502_BAD_GATEWAY
            ) from None
        row = Mismatch.objects.filter(pk=mismatch.pk).values(*MISMATCH_FIELDS).get()
        return Response(
            {"status": "success", "outcome": outcome, "mismatch": MismatchSerializer(row).data}
        )
