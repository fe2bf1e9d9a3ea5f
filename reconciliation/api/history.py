"""``GET /reconciliation/mismatches/{mismatch_id}/history``: every status change of one
difference, oldest first (``models.MismatchEvent``, written by ``reconciliation.ledger``)."""

from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from cdcrecon.api.errors import ApiError
from cdcrecon.api.pagination import EnvelopePagination
from reconciliation.api.permissions import CanViewJobs
from reconciliation.api.serializers import ErrorSerializer
from reconciliation.choices import Actor, ResolutionStatus
from reconciliation.models import Mismatch, MismatchEvent


class MismatchEventSerializer(serializers.ModelSerializer[MismatchEvent]):
    from_status = serializers.ChoiceField(
        choices=ResolutionStatus.choices,
        allow_null=True,
        help_text="The status before; null for the event that put it in the ledger.",
    )
    to_status = serializers.ChoiceField(choices=ResolutionStatus.choices)
    actor_kind = serializers.ChoiceField(
        choices=Actor.choices, help_text="Who made the change: run, recheck, operator, policy."
    )
    actor = serializers.CharField(
        help_text="The operator's username, the job, `policy:<table>` or the in-flight re-check."
    )
    job_id = serializers.UUIDField(allow_null=True, help_text="The job that made it, if any.")
    reason = serializers.CharField(help_text="Why, in words (an operator's own note).")

    class Meta:
        model = MismatchEvent
        fields = ["from_status", "to_status", "at", "actor_kind", "actor", "job_id", "reason"]

    def to_representation(self, instance: MismatchEvent) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["from_status"] = data["from_status"] or None
        return data


class HistoryPagination(EnvelopePagination):
    results_key = "events"
    default_limit = 100
    max_limit = 1000


class MismatchHistoryView(generics.ListAPIView[MismatchEvent]):
    serializer_class = MismatchEventSerializer
    pagination_class = HistoryPagination
    permission_classes = [IsAuthenticated, CanViewJobs]
    filter_backends: list[Any] = []

    @extend_schema(
        tags=["reconciliation"],
        operation_id="get_mismatch_history",
        summary="A mismatch's history",
        description="Every status change of the difference, oldest first: from and to, "
        "when, who (a run, a re-check, an operator, a repair policy), the job and why.",
        parameters=[OpenApiParameter("mismatch_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={
            200: MismatchEventSerializer(many=True),
            **{
                code: OpenApiResponse(ErrorSerializer, description=meaning)
                for code, meaning in {
                    400: "`limit` or `offset` out of range.",
                    401: "No or invalid credentials.",
                    403: "Without the permission to read jobs.",
                    404: "No such mismatch.",
                }.items()
            },
        },
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        text = str(self.kwargs["mismatch_id"])
        try:
            mismatch_id = uuid.UUID(text)
        except ValueError:
            mismatch_id = None
        if mismatch_id is None or not Mismatch.objects.filter(pk=mismatch_id).exists():
            raise ApiError("not_found", f"No mismatch {text[:60]!r}.", status.HTTP_404_NOT_FOUND)
        return MismatchEvent.objects.filter(mismatch_id=mismatch_id).order_by("at", "pk")
