"""``POST /reconciliation/trigger``: one MANUAL job per table, created and queued together."""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cdcrecon.api.errors import ApiError
from reconciliation.api.common import TAG
from reconciliation.api.common import error_responses as _errors
from reconciliation.api.permissions import CanTriggerJobs
from reconciliation.api.serializers import (
    JobConflictSerializer,
    TriggerResponseSerializer,
    TriggerSerializer,
)
from reconciliation.jobs import (
    BadJobRequest,
    JobAlreadyRunning,
    build_parameters,
    create_job,
    enqueue_job,
)
from reconciliation.registry import UnknownTable, get_mapping, registered_names


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
