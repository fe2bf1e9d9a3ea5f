"""The guide's job endpoints: list, details, resume, re-check (``GET /reconciliation/jobs``…).

Declarative viewsets (queryset, serializer, filterset, pagination, permission); the state
changes are actions that call the same functions as the admin
(``reconciliation.jobs.resume_job``).  Jobs are only created (or resumed) and queued here;
Celery workers run them (``reconciliation.tasks``).  Mismatches are served by
``mismatches.py``, the trigger by ``trigger.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from cdcrecon.api.errors import ApiError
from cdcrecon.api.pagination import JobPagination
from reconciliation.api.common import TAG, PagedListMixin
from reconciliation.api.common import error_responses as _errors
from reconciliation.api.job_serializers import JobDetailSerializer, JobSerializer
from reconciliation.api.permissions import CanTriggerJobs, CanViewJobs
from reconciliation.api.serializers import ResumeConflictSerializer
from reconciliation.filtersets import ReconciliationJobFilterSet
from reconciliation.jobs import (
    JobAlreadyRunning,
    JobNotResumable,
    resume_job,
)
from reconciliation.models import ReconciliationJob
from reconciliation.presenters import JOB_MODEL_FIELDS, with_segment_counts


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
