"""Filters over the audit log, for the API (``GET /records/audit``)."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from gdpr.models import AuditAction, AuditLogEntry, StoreStatus
from reconciliation.filtersets import DateRangeForm, Iso8601Filter


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
    from_date = Iso8601Filter(
        field_name="requested_at",
        lookup_expr="gte",
        help_text="Requested at or after this ISO 8601 date or date-time (UTC if no offset).",
    )
    to_date = Iso8601Filter(
        field_name="requested_at",
        lookup_expr="lte",
        end_of_day=True,
        help_text="Requested at or before this ISO 8601 date or date-time; a date alone "
        "includes that whole day.",
    )

    class Meta:
        model = AuditLogEntry
        fields: list[str] = []
        form = DateRangeForm

    def filter_status(
        self, queryset: QuerySet[AuditLogEntry], name: str, value: str
    ) -> QuerySet[AuditLogEntry]:
        return queryset.filter(Q(cassandra_status=value) | Q(postgres_status=value))
