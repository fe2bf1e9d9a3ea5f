"""``GET /reconciliation/jobs/{job_id}/forensics`` and ``GET /reconciliation/forensics?table=``:
why the differences drifted (``reconciliation.forensics.report``; the rules: ``reconciliation.forensics.rules``)."""

from __future__ import annotations

import uuid
from typing import Any

from django_filters import utils as filter_utils
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cdcrecon.api.errors import ApiError
from cdcrecon.filters import FORMAT_PARAMETER
from reconciliation.api.permissions import CanViewJobs
from reconciliation.api.serializers import ErrorSerializer
from reconciliation.filtersets import TableCheckedFilterSet, TableNameFilter
from reconciliation.forensics.report import JobStillRunning, job_forensics, table_forensics
from reconciliation.models import Mismatch, ReconciliationJob

TAG = "reconciliation"


class TimeGroupSerializer(serializers.Serializer[dict[str, Any]]):
    mismatch_type = serializers.CharField()
    bucket_start = serializers.DateTimeField(
        allow_null=True, help_text="Start of the write-time bucket (UTC); null: no write time."
    )
    count = serializers.IntegerField()


class PartitionGroupSerializer(serializers.Serializer[dict[str, Any]]):
    partition = serializers.ListField(
        child=serializers.JSONField(), help_text="The partition key's values, in key order."
    )
    count = serializers.IntegerField()


class ColumnSetGroupSerializer(serializers.Serializer[dict[str, Any]]):
    columns = serializers.ListField(child=serializers.CharField())
    count = serializers.IntegerField()


class FindingSerializer(serializers.Serializer[dict[str, Any]]):
    rule = serializers.CharField(
        help_text="The rule that produced it: in_flight, ttl_expired, hot_partition, "
        "pipeline_gap, column_transform, expired_in_cassandra, deletes_not_propagated or ttl_churn."
    )
    message = serializers.CharField(help_text="The finding in plain words.")
    count = serializers.IntegerField(help_text="How many differences it explains.")
    mismatch_type = serializers.CharField(allow_null=True)
    evidence = serializers.DictField(child=serializers.JSONField(allow_null=True))


class ForensicsSerializer(serializers.Serializer[dict[str, Any]]):
    scope = serializers.ChoiceField(
        choices=["job", "open"],
        help_text="job: the differences one job found; open: a table's open differences.",
    )
    job_id = serializers.UUIDField(allow_null=True)
    table = serializers.CharField()
    total = serializers.IntegerField(help_text="Differences in scope.")
    analyzed = serializers.IntegerField(
        help_text="Differences analysed (the newest, when there are more than 200,000)."
    )
    in_flight = serializers.IntegerField(help_text="Of those, IN_FLIGHT (not drift yet).")
    bucket = serializers.ChoiceField(
        choices=["minute", "hour", "day"], help_text="Size of the write-time buckets."
    )
    by_type_and_time = TimeGroupSerializer(many=True)
    partitions = serializers.IntegerField(help_text="Distinct partitions with a difference.")
    by_partition = PartitionGroupSerializer(many=True, help_text="The top 10 partitions.")
    by_column_set = ColumnSetGroupSerializer(
        many=True, help_text="DATA_MISMATCH by the set of columns that differ (top 10)."
    )
    findings = FindingSerializer(many=True)


class ForensicsFilterSet(TableCheckedFilterSet):
    extra_parameters = (FORMAT_PARAMETER,)
    table = TableNameFilter(required=True, help_text="The table (exact name).")

    class Meta:
        model = Mismatch
        fields = ["table"]


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    meaning = {
        400: "`table` is missing or unknown (named in `fields`).",
        401: "No or invalid credentials.",
        403: "Without the permission to read jobs.",
        404: "No such job.",
        409: "The job is still RUNNING (`job_running`): ask again once it has completed.",
    }
    return {code: OpenApiResponse(ErrorSerializer, description=meaning[code]) for code in codes}


class JobForensicsView(APIView):
    permission_classes = [IsAuthenticated, CanViewJobs]

    @extend_schema(
        tags=[TAG],
        operation_id="get_job_forensics",
        summary="Why a job's differences drifted",
        description="Groups (type × write-time bucket, partitions, differing columns) and "
        "findings over the differences this job found.",
        parameters=[OpenApiParameter("job_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={200: ForensicsSerializer, **_errors(401, 403, 404, 409)},
    )
    def get(self, request: Request, job_id: str) -> Response:
        job = ReconciliationJob.objects.filter(pk=_uuid_or_404(job_id)).first()
        if job is None:
            raise ApiError("not_found", f"No job {job_id[:60]!r}.", status.HTTP_404_NOT_FOUND)
        try:
            report = job_forensics(job)
        except JobStillRunning as exc:
            raise ApiError(
                "job_running", str(exc), status.HTTP_409_CONFLICT, job_id=str(job.job_id)
            ) from None
        return Response(ForensicsSerializer(report).data)


class TableForensicsView(APIView):
    permission_classes = [IsAuthenticated, CanViewJobs]

    @extend_schema(
        tags=[TAG],
        operation_id="get_table_forensics",
        summary="Why a table's open differences drifted",
        description="Groups and findings over the table's open differences in the ledger "
        "(PENDING, IGNORED and IN_FLIGHT).",
        parameters=[
            OpenApiParameter("table", OpenApiTypes.STR, OpenApiParameter.QUERY, required=True)
        ],
        responses={200: ForensicsSerializer, **_errors(400, 401, 403)},
    )
    def get(self, request: Request) -> Response:
        filterset = ForensicsFilterSet(
            request.query_params, queryset=Mismatch.objects.all(), request=request
        )
        if not filterset.is_valid():
            raise filter_utils.translate_validation(filterset.errors)
        return Response(
            ForensicsSerializer(table_forensics(filterset.form.cleaned_data["table"])).data
        )


def _uuid_or_404(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise ApiError(
            "not_found", f"No job {text[:60]!r} (not a job id).", status.HTTP_404_NOT_FOUND
        ) from None
