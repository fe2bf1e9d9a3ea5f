"""Filters over the audit log, for the API (``GET /records/audit``).

Strict like every list endpoint's (``cdcrecon.filters.StrictFilterSet``): an unknown or
repeated parameter, an unknown ``action``/``status`` value, a malformed table name or date
and a reversed ``from_date``/``to_date`` are a 400 naming the parameter.
"""

from __future__ import annotations

import django_filters
from django.core.validators import RegexValidator
from django.db.models import Q, QuerySet

from cdcrecon.conf import TABLE_NAME_PATTERN
from cdcrecon.filters import StrictFilterSet
from gdpr.models import AuditAction, AuditLogEntry, StoreStatus
from reconciliation.filtersets import Iso8601Filter

_IDENTIFIER = RegexValidator(
    rf"^{TABLE_NAME_PATTERN}$",
    "Not a Cassandra identifier (letters, digits and underscores, at most 48).",
)


class AuditLogFilterSet(StrictFilterSet):
    table = django_filters.CharFilter(
        field_name="table", validators=[_IDENTIFIER], help_text="Cassandra table name."
    )
    keyspace = django_filters.CharFilter(
        field_name="keyspace", validators=[_IDENTIFIER], help_text="Cassandra keyspace name."
    )
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

    date_ranges = (("from_date", "to_date"),)

    def filter_status(
        self, queryset: QuerySet[AuditLogEntry], name: str, value: str
    ) -> QuerySet[AuditLogEntry]:
        return queryset.filter(Q(cassandra_status=value) | Q(postgres_status=value))
