"""``GET /reconciliation/tables``, ``GET|PATCH /reconciliation/tables/{name}``: the registered
tables and the settings an operator tunes on them (the CDC lag budget, the repair policy,
the source read-rate cap).

A table's identity (its name, keyspace, tables, keys) is registered with
``manage.py register_tables`` and read-only here.  A table named in RECONCILIATION_TABLES
that no job has registered yet is shown with its defaults and the identity its first job
would give it (``registered: false``); a PATCH registers it with that identity first (in
the same transaction: a rejected PATCH registers nothing).  A PATCH is checked by the model's own
rules (``TableMapping.full_clean``: the admin form runs the same), so a bad value is a 400
naming its field, whichever way it came in; a field the API does not know, or may not
change, is a 400 too rather than silently ignored.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from cdcrecon.api.errors import ApiError
from reconciliation.api.arrival import ArrivalSerializer
from reconciliation.api.permissions import CanChangeTables, CanViewTables
from reconciliation.api.serializers import ErrorSerializer
from reconciliation.choices import MismatchType, RepairPolicy
from reconciliation.models import TableMapping
from reconciliation.models.mappings import REPAIR_POLICY_FIELDS
from reconciliation.registry import UnknownTable, get_mapping, peek_mapping

TAG = "reconciliation"

IDENTITY_FIELDS = (
    "name",
    "cassandra_keyspace",
    "cassandra_table",
    "postgres_schema",
    "postgres_table",
    "partition_key_columns",
    "clustering_columns",
)
TUNABLE_FIELDS = (
    "enabled",
    "cdc_lag_budget_seconds",
    *REPAIR_POLICY_FIELDS,
    "source_max_rows_per_second",
)
POLICIES = ", ".join(RepairPolicy.values)


class TableSerializer(serializers.ModelSerializer[TableMapping]):
    repair_policy = serializers.ChoiceField(
        choices=RepairPolicy.choices,
        required=False,
        error_messages={
            "invalid_choice": f'"{{input}}" is not a repair policy: use one of {POLICIES}.'
        },
        help_text="off (default), dry_run (record what it would repair, write nothing) or on.",
    )
    repair_types = serializers.ListField(
        child=serializers.ChoiceField(choices=MismatchType.choices),
        read_only=True,
        help_text="The mismatch types the policy may repair (from the three repair_* flags).",
    )
    effective_repair_min_age_seconds = serializers.FloatField(
        source="repair_min_age",
        read_only=True,
        help_text="The minimum age the policy uses: its own, else the table's CDC lag "
        "budget, else 600.",
    )
    registered = serializers.SerializerMethodField(
        help_text="False for a table reconciled by convention (RECONCILIATION_TABLES) that "
        "no job or PATCH has registered yet: its first job (or a PATCH) registers it with the "
        "identity shown; its key columns are read from Cassandra then."
    )
    arrival_last_day = ArrivalSerializer(
        source="*",
        read_only=True,
        help_text="How long the CDC pipeline took to copy the writes seen in flight, over "
        "the last 24 hours (p50/p99 seconds from the write to the read that found the copy).",
    )

    class Meta:
        model = TableMapping
        fields = (
            *IDENTITY_FIELDS,
            *TUNABLE_FIELDS,
            "repair_types",
            "effective_repair_min_age_seconds",
            "registered",
            "arrival_last_day",
        )
        read_only_fields = IDENTITY_FIELDS

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_registered(self, table: TableMapping) -> bool:
        return table.pk is not None

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            fixed = [name for name in data if name in IDENTITY_FIELDS]
            unknown = [name for name in data if name not in self.fields]
            problems = {
                name: ["Read-only: registered with manage.py register_tables."] for name in fixed
            }
            problems.update(
                {
                    name: [
                        f"Unknown field; the fields you may change: {', '.join(TUNABLE_FIELDS)}."
                    ]
                    for name in unknown
                }
            )
            if problems:
                raise serializers.ValidationError(problems)
        return super().to_internal_value(data)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """The model's own rules, on the table as it would be after the change."""
        assert self.instance is not None  # tables are registered, never created here
        table = TableMapping.objects.get(pk=self.instance.pk)
        for name, value in attrs.items():
            setattr(table, name, value)
        try:
            table.full_clean(validate_unique=False)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        return attrs


@extend_schema(tags=[TAG])
class TableViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet[TableMapping],
):
    """The registered tables (and those reconciled by convention), and their tunable
    settings."""

    queryset = TableMapping.objects.order_by("name")
    serializer_class = TableSerializer
    permission_classes = [IsAuthenticated, CanViewTables]
    lookup_field = "name"
    http_method_names = ["get", "patch", "head", "options"]

    def get_permissions(self) -> Any:
        if self.action == "partial_update":
            return [IsAuthenticated(), CanChangeTables()]
        return super().get_permissions()

    def get_object(self) -> TableMapping:
        """The stored table, else the one RECONCILIATION_TABLES reconciles by convention:
        shown as its first job would register it, registered by a PATCH."""
        name = self.kwargs[self.lookup_field]
        try:
            table = get_mapping(name) if self.action == "partial_update" else peek_mapping(name)
        except UnknownTable as exc:
            raise ApiError("not_found", str(exc), status.HTTP_404_NOT_FOUND) from None
        self.check_object_permissions(self.request, table)
        return table

    @extend_schema(
        operation_id="list_tables",
        summary="List the registered tables",
        responses={200: TableSerializer(many=True), **{c: ErrorSerializer for c in (401, 403)}},
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        operation_id="get_table",
        summary="Get a table (registered, or reconciled by convention)",
        parameters=[OpenApiParameter("name", OpenApiTypes.STR, OpenApiParameter.PATH)],
        responses={200: TableSerializer, **{c: ErrorSerializer for c in (401, 403, 404)}},
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        operation_id="update_table",
        summary="Change a table's lag budget, repair policy or read-rate cap",
        description="Only the fields sent change. A bad value is a 400 naming its field "
        "(the admin form applies the same rules). A table reconciled by convention that no "
        "job has registered yet is registered first, as its first job would; a rejected "
        "PATCH registers nothing. An unknown name is a 404 listing the known tables.",
        parameters=[OpenApiParameter("name", OpenApiTypes.STR, OpenApiParameter.PATH)],
        responses={
            200: TableSerializer,
            400: OpenApiResponse(ErrorSerializer, description="A field is wrong (see fields)."),
            **{c: ErrorSerializer for c in (401, 403, 404)},
        },
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        with transaction.atomic():  # a 400 also undoes the registration get_object made
            return super().partial_update(request, *args, **kwargs)
