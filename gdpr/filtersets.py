"""Filters over the audit log, for the API (``GET /records/audit``)."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from gdpr.models import AuditAction, AuditLogEntry, StoreStatus


class AuditLogFilterSet(django_filters.FilterSet):
    table = django_filters.CharFilter(field_name="table", help_text="Cassandra table name.")
    keyspace = django_filters.CharFilter(field_name="keyspace")
    requester = django_filters.CharFilter(field_name="requester")
    action = django_filters.ChoiceFilter(choices=AuditAction.choices)
    status = django_filters.ChoiceFilter(
        choices=StoreStatus.choices,
        method="filter_status",
        help_text="Entries where either store has this status.",
    )
    primary_key = django_filters.CharFilter(field_name="primary_key")
    from_date = django_filters.IsoDateTimeFilter(
        field_name="requested_at", lookup_expr="gte", help_text="Requested at or after (ISO 8601)."
    )
    to_date = django_filters.IsoDateTimeFilter(
        field_name="requested_at", lookup_expr="lt", help_text="Requested before (ISO 8601)."
    )

    class Meta:
        model = AuditLogEntry
        fields: list[str] = []

    def filter_status(
        self, queryset: QuerySet[AuditLogEntry], name: str, value: str
    ) -> QuerySet[AuditLogEntry]:
        return queryset.filter(Q(cassandra_status=value) | Q(postgres_status=value))
