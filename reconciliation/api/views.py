"""The guide's REST API: trigger, jobs, job details, resume, mismatches, resolve.

Declarative viewsets (queryset, serializer, filterset, pagination, permission); the state
changes are actions that call the same functions as the admin (``Mismatch.resolve``,
``reconciliation.jobs.resume_job``).  Jobs are only created (or resumed) and queued here;
Celery workers run them (``reconciliation.tasks``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import psycopg
from cassandra import DriverException
from cassandra.cluster import NoHostAvailable
from django.db import transaction
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
from rest_framework.views import APIView

from cdcrecon.api.errors import ApiError
from cdcrecon.api.pagination import JobPagination, MismatchPagination
from cdcrecon.filters import FilterSetOnViewBackend
from reconciliation.api.permissions import CanResolveMismatches, CanTriggerJobs, CanViewJobs
from reconciliation.api.serializers import (
    JOB_MODEL_FIELDS,
    MISMATCH_FIELDS,
    ErrorSerializer,
    JobConflictSerializer,
    JobDetailSerializer,
    JobSerializer,
    MismatchSerializer,
    RecheckResponseSerializer,
    ResolveConflictSerializer,
    ResolveResponseSerializer,
    ResolveSerializer,
    ResumeConflictSerializer,
    TriggerResponseSerializer,
    TriggerSerializer,
    iso,
)
from reconciliation.connections import StoreUnavailable
from reconciliation.engine.keys import BadKey
from reconciliation.engine.schema import SchemaError
from reconciliation.filtersets import MismatchFilterSet, ReconciliationJobFilterSet
from reconciliation.jobs import (
    BadJobRequest,
    JobAlreadyRunning,
    JobNotResumable,
    build_parameters,
    create_job,
    describe_failure,
    enqueue_job,
    resume_job,
)
from reconciliation.ledger import reads as ledger
from reconciliation.models import AlreadyResolved, Mismatch, ReconciliationJob
from reconciliation.presenters import with_segment_counts
from reconciliation.registry import TableNotFound, UnknownTable, get_mapping, registered_names

TAG = "reconciliation"


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    meaning = {
        400: "Invalid request: a body field or query parameter is wrong (named in `fields`).",
        401: "No or invalid credentials (send `Authorization: Bearer <token>`).",
        403: "Authenticated, but without the permission this endpoint needs.",
        404: "No such job or mismatch.",
        415: "The body is not `application/json`.",
    }
    return {code: OpenApiResponse(ErrorSerializer, description=meaning[code]) for code in codes}


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


class PagedListMixin:
    """Check paging parameters before filtering, so a bad limit never costs a query."""

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self.paginator.check_parameters(request)  # type: ignore[attr-defined]
        return super().list(request, *args, **kwargs)  # type: ignore[misc]


@extend_schema(tags=[TAG])
class ReconciliationJobViewSet(PagedListMixin, viewsets.ReadOnlyModelViewSet):
    """Reconciliation job history and details, and resuming a failed job."""

    # The segment counts are annotated (one query a page, see with_segment_counts).
    queryset = with_segment_counts(
        ReconciliationJob.objects.select_related("requested_by")
        .only(*JOB_MODEL_FIELDS, "requested_by__username")
        .order_by("-started_at", "-job_id")
    )
    serializer_class = JobSerializer
    filterset_class = ReconciliationJobFilterSet
    pagination_class = JobPagination
    permission_classes = [IsAuthenticated, CanViewJobs]
    lookup_field = "job_id"
    lookup_url_kwarg = "job_id"
    # Set per action (the stricter mutations budget): resume shares the trigger's.
    throttle_scope: str | None = None

    def get_serializer_class(self) -> type[JobSerializer]:
        return JobDetailSerializer if self.action == "retrieve" else JobSerializer

    def get_permissions(self) -> Sequence[Any]:
        if self.action == "resume":  # starts work, like POST /reconciliation/trigger
            return [IsAuthenticated(), CanTriggerJobs()]
        return super().get_permissions()

    def get_queryset(self) -> QuerySet[ReconciliationJob]:
        if self.action == "retrieve":
            return with_segment_counts(ReconciliationJob.objects.select_related("requested_by"))
        if self.action == "resume":
            return ReconciliationJob.objects.all()
        return super().get_queryset()

    def filter_queryset(self, queryset: Any) -> Any:
        # The filters are the list's; a job's detail page ignores query parameters.
        return super().filter_queryset(queryset) if self.action == "list" else queryset

    @extend_schema(
        operation_id="list_jobs",
        summary="List reconciliation jobs",
        description="Newest first. `from_date`/`to_date` bound `started_at` (ISO 8601).",
        responses={200: JobSerializer(many=True), **_errors(400, 401, 403)},
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        operation_id="get_job",
        summary="Get a reconciliation job with its mismatches",
        description="The job's fields plus up to 1000 of its mismatches, newest first "
        "(the rest: `GET /reconciliation/mismatches?job_id=...`).",
        parameters=[OpenApiParameter("job_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={200: JobDetailSerializer, **_errors(401, 403, 404)},
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        operation_id="resume_job",
        summary="Resume a failed job",
        description="Puts a FAILED job back to RUNNING and queues it: only its unfinished "
        "segments are run again (the finished ones, their attempts and their differences are "
        "kept), then the job is finalized as usual. A job that failed before it was split "
        "into segments, or a SAMPLE job, runs again from the start. Needs the permission to "
        "trigger jobs, and counts against the same request budget as the trigger.",
        parameters=[OpenApiParameter("job_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        request=None,
        responses={
            202: OpenApiResponse(
                JobSerializer, description="Resumed: the job, RUNNING again, and queued."
            ),
            **_errors(401, 403, 404),
            409: OpenApiResponse(
                ResumeConflictSerializer,
                description="Not resumed: the job is not FAILED (`job_not_resumable`), or its "
                "table already has a RUNNING job (`job_already_running`, whose `job_id` is "
                "given). Nothing was changed.",
            ),
        },
    )
    @action(
        detail=True,
        methods=["post"],
        filter_backends=[],
        pagination_class=None,
        throttle_scope="trigger",
    )
    def resume(self, request: Request, job_id: str | None = None) -> Response:
        job = self.get_object()
        try:
            resume_job(job, request.user)  # queued once it commits
        except JobNotResumable as exc:
            raise ApiError(
                "job_not_resumable",
                str(exc),
                status.HTTP_409_CONFLICT,
                job_id=str(job.job_id),
                table_name=job.table_name,
                status=job.status,
            ) from None
        except JobAlreadyRunning as exc:
            running = exc.job
            raise ApiError(
                "job_already_running",
                f"{exc} Job {job.job_id} was not resumed.",
                status.HTTP_409_CONFLICT,
                job_id=str(running.job_id),
                table_name=running.table_name,
                status=running.status,
            ) from None
        resumed = with_segment_counts(ReconciliationJob.objects.select_related("requested_by")).get(
            pk=job.pk
        )
        return Response(JobSerializer(resumed).data, status=status.HTTP_202_ACCEPTED)


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


class TriggerView(APIView):
    """POST /reconciliation/trigger: create one MANUAL job per table and queue them.

    All or nothing: every table is checked first (an unknown one is a 400 naming it), then
    all jobs are created in one transaction (a table with a RUNNING job is a 409 naming that
    job, and no job of the request is kept).  The answer is 202 Accepted: the jobs exist and
    are RUNNING, but a worker has yet to do the work; poll GET /reconciliation/jobs/{job_id}.
    """

    permission_classes = [IsAuthenticated, CanTriggerJobs]
    throttle_scope = "trigger"  # the stricter API_THROTTLE_MUTATIONS budget

    @extend_schema(
        tags=[TAG],
        operation_id="trigger_reconciliation",
        summary="Trigger reconciliation for tables",
        request=TriggerSerializer,
        responses={
            202: OpenApiResponse(
                TriggerResponseSerializer, description="Jobs created (RUNNING) and queued."
            ),
            **_errors(400, 401, 403, 415),
            409: OpenApiResponse(
                JobConflictSerializer,
                description="A listed table already has a RUNNING job (its `job_id` is given); "
                "no job was created.",
            ),
        },
        examples=[
            OpenApiExample(
                "Row counts",
                value={"tables": ["users", "orders"], "validation_strategy": "ROW_COUNT"},
                request_only=True,
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        body = TriggerSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        strategy = data["validation_strategy"]
        try:
            parameters = build_parameters(
                strategy,
                window_from=data.get("from"),
                window_to=data.get("to"),
                sample_size=data.get("sample_size"),
            )
        except BadJobRequest as exc:
            raise ApiError(
                "invalid_request", str(exc), status.HTTP_400_BAD_REQUEST, {exc.field: [str(exc)]}
            ) from None

        mappings, unknown = [], []
        for name in data["tables"]:
            try:
                mappings.append(get_mapping(name))
            except UnknownTable:
                unknown.append(name)
        if unknown:
            message = (
                f"Unknown table{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}. "
                f"Registered tables: {', '.join(registered_names()) or 'none'}. No job was created."
            )
            raise ApiError(
                "unknown_table", message, status.HTTP_400_BAD_REQUEST, {"tables": [message]}
            )

        try:
            with transaction.atomic():
                jobs = [
                    create_job(mapping, strategy, parameters=parameters, requested_by=request.user)
                    for mapping in mappings
                ]
                for job in jobs:
                    enqueue_job(job)  # sent when (and only if) the transaction commits
        except JobAlreadyRunning as exc:
            running = exc.job
            raise ApiError(
                "job_already_running",
                f"{exc} No job was created.",
                status.HTTP_409_CONFLICT,
                {"tables": [f"Table {running.table_name!r} already has a running job."]},
                job_id=str(running.job_id),
                table_name=running.table_name,
            ) from None
        return Response(
            {"job_ids": [str(job.job_id) for job in jobs], "status": "RUNNING"},
            status=status.HTTP_202_ACCEPTED,
        )
