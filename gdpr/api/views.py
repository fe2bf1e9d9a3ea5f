"""The GDPR endpoints: erase one record, read the audit log.  Logic lives in gdpr.erasure
(and the request's checks in gdpr.record)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cdcrecon.api.errors import error_response, map_domain_error
from cdcrecon.api.pagination import EnvelopePagination
from gdpr.api.permissions import CanEraseRecords, CanViewAuditLog
from gdpr.api.serializers import (
    AuditLogEntrySerializer,
    ErasureRequestSerializer,
    ErasureResultSerializer,
)
from gdpr.erasure import erase_record, is_complete_erasure
from gdpr.filtersets import AuditLogFilterSet
from gdpr.models import AuditLogEntry
from gdpr.record import UnknownRecordTable, find_mapping
from reconciliation.connections import StoreUnavailable
from reconciliation.engine.keys import BadKey

# The domain's errors, answered by cdcrecon.api.errors.exception_handler.
map_domain_error(UnknownRecordTable, 404, "not_found")
map_domain_error(BadKey, 400, "invalid_key")  # InvalidKey adds fields={column: [problem]}
map_domain_error(StoreUnavailable, 503, "store_unavailable")


class AuditLogPagination(EnvelopePagination):
    results_key = "entries"
    default_limit = 100
    max_limit = 1000


class AuditLogListView(ListAPIView):
    """``GET /records/audit``: the erasure and repair audit log, newest first."""

    queryset = AuditLogEntry.objects.all()
    serializer_class = AuditLogEntrySerializer
    filterset_class = AuditLogFilterSet
    pagination_class = AuditLogPagination
    permission_classes = [CanViewAuditLog]


class RecordErasureView(APIView):
    """``DELETE /records/{keyspace}/{table}/{primary_key}``: GDPR erasure from both stores."""

    permission_classes = [CanEraseRecords]
    http_method_names = ["delete", "options"]
    throttle_scope = "erasure"  # the stricter API_THROTTLE_MUTATIONS budget

    @extend_schema(
        operation_id="records_erase",
        summary="Erase one record from Cassandra and PostgreSQL (GDPR Art. 17)",
        parameters=[
            OpenApiParameter("keyspace", OpenApiTypes.STR, OpenApiParameter.PATH),
            OpenApiParameter("table", OpenApiTypes.STR, OpenApiParameter.PATH),
            OpenApiParameter(
                "primary_key",
                OpenApiTypes.STR,
                OpenApiParameter.PATH,
                description="The key's canonical text; for a composite key a URL-encoded JSON "
                "array of the key columns' texts in key order.",
            ),
            OpenApiParameter(
                "reason",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                required=False,
                description='Required here or in the JSON body {"reason": "..."}.',
            ),
        ],
        request=ErasureRequestSerializer,
        responses={
            200: ErasureResultSerializer,
            400: OpenApiResponse(description="Missing reason or malformed key."),
            401: OpenApiResponse(description="Not authenticated."),
            403: OpenApiResponse(description="Needs gdpr.erase_record."),
            404: OpenApiResponse(description="Not a registered table."),
            502: OpenApiResponse(
                ErasureResultSerializer, description="A store failed; repeat the request."
            ),
        },
    )
    def delete(self, request: Request, keyspace: str, table: str, primary_key: str) -> Response:
        mapping = find_mapping(keyspace, table)  # UnknownRecordTable: a 404

        body = request.data
        if not isinstance(body, dict):
            return error_response(
                "invalid_request", 'The body must be a JSON object: {"reason": "..."}.', 400
            )
        reason = body.get("reason", request.query_params.get("reason"))
        form = ErasureRequestSerializer(data={"reason": reason} if reason is not None else {})
        form.is_valid(raise_exception=True)

        try:
            entry = erase_record(
                mapping,
                primary_key,
                requester=request.user.get_username(),
                reason=form.validated_data["reason"],
            )
        except BadKey as exc:  # nothing was written: a 400 naming the column (or the key)
            fields = getattr(exc, "fields", None) or {"primary_key": [str(exc)]}
            return error_response("invalid_key", str(exc), status.HTTP_400_BAD_REQUEST, fields)

        result = ErasureResultSerializer(entry).data
        if is_complete_erasure(entry):
            return Response(result, status=status.HTTP_200_OK)
        failed = [
            store
            for store, outcome in (
                ("cassandra", result["cassandra"]),
                ("postgres", result["postgres"]),
            )
            if outcome["status"] not in ("SUCCESS", "NOT_FOUND")
        ]
        return Response(
            {
                "error": "erasure_incomplete",
                "detail": f"The erasure did not complete in {' and '.join(failed)}; "
                "repeat the request to finish it.",
                "fields": {},
                **result,
            },
            status=status.HTTP_502_BAD_GATEWAY,
        )
