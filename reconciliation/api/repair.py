"""``POST /reconciliation/mismatches/{mismatch_id}/repair``: repair a mismatch from Cassandra.

Wire it in ``reconciliation/api/urls.py``::

    path("reconciliation/mismatches/<str:mismatch_id>/repair", repair.repair_mismatch_view,
         name="mismatch-repair"),

(``<str:…>`` rather than ``<uuid:…>`` so that a malformed id is a JSON 404, not Django's
HTML page.)
"""

from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from cdcrecon.api.errors import error_response, map_domain_error
from cdcrecon.api.throttles import throttle_scope
from reconciliation.api.permissions import CanRepairMismatches
from reconciliation.models import Mismatch
from reconciliation.repair.manual import RepairFailed, RepairResult, repair_mismatch

# A store that failed is the gateway's fault (502); everything else is a conflict with the
# mismatch's or the table's current state (409).
STORE_FAILURES = {"cassandra_unavailable", "target_unavailable", "target_write_failed"}


def repair_failure_status(exc: RepairFailed) -> int:
    return 502 if exc.code in STORE_FAILURES else 409


map_domain_error(RepairFailed, repair_failure_status)


def repair_payload(result: RepairResult) -> dict[str, Any]:
    mismatch = result.mismatch
    return {
        "mismatch_id": str(mismatch.mismatch_id),
        "table_name": mismatch.table_name,
        "primary_key_value": mismatch.primary_key_value,
        "mismatch_type": mismatch.mismatch_type,
        "resolution_status": mismatch.resolution_status,
        "resolution_notes": mismatch.resolution_notes,
        "resolved_at": mismatch.resolved_at.isoformat().replace("+00:00", "Z")
        if mismatch.resolved_at
        else None,
        "resolved_by": mismatch.resolved_by.get_username() if mismatch.resolved_by else None,
        "repair": {
            "action": result.action,
            "source_changed_columns": result.changed_columns,
            "before": result.before,
            "after": result.after,
            "audit_log_id": result.audit_entry.pk,
        },
    }


@extend_schema(
    operation_id="reconciliation_mismatch_repair",
    summary="Repair a mismatch from the source (Cassandra)",
    description=(
        "Reads the row from Cassandra now and makes the PostgreSQL row equal to it: upsert "
        "when the row exists in Cassandra, delete when it does not. The mismatch becomes "
        "AUTO_RESOLVED and an audit log entry records the row before and after. Needs the "
        "'reconciliation.repair_mismatch' permission."
    ),
    request=None,
    responses={
        200: OpenApiResponse(description="Repaired; the mismatch and what was written."),
        404: OpenApiResponse(description="No such mismatch."),
        409: OpenApiResponse(
            description="Already resolved, table no longer registered, or schema problem."
        ),
        502: OpenApiResponse(description="Cassandra or PostgreSQL failed; nothing changed."),
    },
)
@throttle_scope("repair")  # the stricter API_THROTTLE_MUTATIONS budget
@api_view(["POST"])
@permission_classes([CanRepairMismatches])
def repair_mismatch_view(request: Request, mismatch_id: str) -> Response:
    try:
        mismatch = Mismatch.objects.get(pk=uuid.UUID(str(mismatch_id)))
    except (ValueError, Mismatch.DoesNotExist):
        return error_response(
            "not_found", f"No mismatch with id {mismatch_id!r}.", status.HTTP_404_NOT_FOUND
        )
    result = repair_mismatch(mismatch, request.user)  # RepairFailed: mapped above
    return Response(repair_payload(result), status=status.HTTP_200_OK)
