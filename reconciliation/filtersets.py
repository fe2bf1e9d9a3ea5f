"""Filters for jobs and mismatches, shared by the REST API and the admin (NetBox style).

The query parameter names are the guide's: ``table``, ``status``, ``from_date``, ``to_date``
for jobs; ``table``, ``mismatch_type``, ``resolution_status`` for mismatches, plus
``job_id`` and the admin's date filters (``detected_after``/``detected_before``,
``last_seen_after``/``last_seen_before``).  The filtersets are strict
(``cdcrecon.filters.StrictFilterSet``): an unknown or repeated parameter, an unknown enum
member (the message lists the valid ones), a malformed table name or one that is neither
registered nor in the history, a date that is not ISO 8601 and a reversed date range make
the filterset invalid, which the API turns into a 400 naming the parameter.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, ClassVar

import django_filters
from django import forms
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from cdcrecon.conf import TABLE_NAME_PATTERN, settings
from cdcrecon.filters import StrictFilterSet
from reconciliation.choices import JobStatus, MismatchType, ResolutionStatus
from reconciliation.models import (
    JobFinding,
    Mismatch,
    MismatchCount,
    ReconciliationJob,
    TableMapping,
)


class Iso8601Field(forms.Field):
    """An ISO 8601 date-time (``2025-11-25T10:00:00Z``) or date (``2025-11-25``), in UTC.

    A date alone means the start of that day for a lower bound and the end of that day for
    an upper bound (``end_of_day=True``), so ``from_date=2025-11-25&to_date=2025-11-25``
    selects the whole day.  A date-time without an offset is read as UTC; the value is
    returned in UTC.  Reusable by any filterset (the admin's, gdpr's).
    """

    default_error_messages = {
        "invalid": "Enter an ISO 8601 date or date-time, e.g. 2025-11-25 or 2025-11-25T10:00:00Z."
    }

    def __init__(self, *, end_of_day: bool = False, **kwargs: Any) -> None:
        self.end_of_day = end_of_day
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> dt.datetime | None:
        if value in self.empty_values:
            return None
        if isinstance(value, dt.datetime):
            parsed: dt.datetime | None = value
        else:
            text = str(value).strip()
            try:
                # A date first: parse_datetime would read "2025-11-25" as its midnight.
                day = parse_date(text) if len(text) <= 10 else None
                parsed = None if day else parse_datetime(text)
            except ValueError:  # well-formed but impossible, e.g. 2025-02-30
                raise forms.ValidationError(
                    self.error_messages["invalid"], code="invalid"
                ) from None
            if day is not None:
                parsed = dt.datetime.combine(day, dt.time.min)
                if self.end_of_day:
                    parsed += dt.timedelta(days=1) - dt.timedelta(microseconds=1)
        if parsed is None:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        if timezone.is_naive(parsed):
            return parsed.replace(tzinfo=dt.UTC)
        try:
            # In UTC: PostgreSQL refuses offsets beyond ±15:59 that Python accepts (+19:54).
            return parsed.astimezone(dt.UTC)
        except OverflowError:  # 0001-01-01T00:00+01:00 is before the first UTC instant
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None


class Iso8601Filter(django_filters.Filter):
    field_class = Iso8601Field


class TableNameFilter(django_filters.CharFilter):
    """A table name: well-formed, and registered, configured or present in the history.

    A typo (``?table=user``) is a 400 listing the known tables, not an empty page; a table
    that was unregistered but still has jobs or mismatches stays filterable.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("field_name", "table_name")
        kwargs.setdefault("max_length", 48)
        super().__init__(**kwargs)


def known_table_names() -> list[str]:
    """The registered tables and those configured in RECONCILIATION_TABLES."""
    names = set(TableMapping.objects.values_list("name", flat=True))
    names.update(settings.reconciliation.tables)
    return sorted(names)


class TableCheckedFilterSet(StrictFilterSet):
    """Checks ``table`` against the registered tables and the filtered model's history."""

    table_parameter: ClassVar[str] = "table"

    def check_parameters(self) -> bool:
        valid = super().check_parameters()
        name = self.form.cleaned_data.get(self.table_parameter) if self.strict else None
        if not name:
            return valid
        known = known_table_names()
        if not re.fullmatch(TABLE_NAME_PATTERN, name):
            message = f"{name[:60]!r} is not a table name (letters, digits and underscores)."
        elif name in known or self.queryset.model.objects.filter(table_name=name).exists():
            return valid
        else:
            message = f"Unknown table {name!r}; known tables: {', '.join(known) or 'none'}."
        self.reject(self.table_parameter, message)
        return False


class ReconciliationJobFilterSet(TableCheckedFilterSet):
    table = TableNameFilter(help_text="Only jobs of this table (exact name).")
    status = django_filters.ChoiceFilter(choices=JobStatus.choices, help_text="Job status.")
    from_date = Iso8601Filter(
        field_name="started_at",
        lookup_expr="gte",
        help_text="Jobs started at or after this ISO 8601 date or date-time (UTC if no offset).",
    )
    to_date = Iso8601Filter(
        field_name="started_at",
        lookup_expr="lte",
        end_of_day=True,
        help_text="Jobs started at or before this ISO 8601 date or date-time; a date alone "
        "includes that whole day.",
    )
    date_ranges = (("from_date", "to_date"),)

    class Meta:
        model = ReconciliationJob
        fields = ["table", "status", "from_date", "to_date"]


class MismatchFilterSet(TableCheckedFilterSet):
    table = TableNameFilter(help_text="Only mismatches of this table (exact name).")
    mismatch_type = django_filters.ChoiceFilter(
        choices=MismatchType.choices, help_text="Mismatch type."
    )
    resolution_status = django_filters.ChoiceFilter(
        choices=ResolutionStatus.choices, help_text="Resolution status."
    )
    job_id = django_filters.UUIDFilter(
        method="filter_found_by_job",
        help_text="Only mismatches found by this job (first found, or found again).",
    )
    detected_after = Iso8601Filter(
        field_name="detected_at",
        lookup_expr="gte",
        help_text="First detected at or after this ISO 8601 date or date-time (UTC if no offset).",
    )
    detected_before = Iso8601Filter(
        field_name="detected_at",
        lookup_expr="lte",
        end_of_day=True,
        help_text="First detected at or before this ISO 8601 date or date-time; a date alone "
        "includes that whole day.",
    )
    last_seen_after = Iso8601Filter(
        field_name="last_seen_at",
        lookup_expr="gte",
        help_text="Last seen by a run at or after this ISO 8601 date or date-time.",
    )
    last_seen_before = Iso8601Filter(
        field_name="last_seen_at",
        lookup_expr="lte",
        end_of_day=True,
        help_text="Last seen by a run at or before this ISO 8601 date or date-time; a date "
        "alone includes that whole day.",
    )
    date_ranges = (
        ("detected_after", "detected_before"),
        ("last_seen_after", "last_seen_before"),
    )

    class Meta:
        model = Mismatch
        fields = [
            "table",
            "mismatch_type",
            "resolution_status",
            "job_id",
            "detected_after",
            "detected_before",
            "last_seen_after",
            "last_seen_before",
        ]

    # Filters whose combinations MismatchCount counts exactly (and their model fields).
    precounted_filters: ClassVar[dict[str, str]] = {
        "table": "table_name",
        "mismatch_type": "mismatch_type",
        "resolution_status": "resolution_status",
    }

    def precounted_total(self) -> int | None:
        """The exact number of matching mismatches from the trigger-kept counts, or None.

        None when a filter outside (table, mismatch_type, resolution_status) is used: the
        caller counts the filtered queryset instead (those filters are index-selective).
        """
        if not self.is_valid():
            return None
        used = {name: value for name, value in self.form.cleaned_data.items() if value}
        if set(used) - set(self.precounted_filters):
            return None
        return MismatchCount.objects.total(
            **{self.precounted_filters[name]: value for name, value in used.items()}
        )

    def filter_found_by_job(self, queryset: QuerySet[Any], name: str, value: Any) -> QuerySet[Any]:
        if value is None:
            return queryset
        found = JobFinding.objects.filter(job_id=value).values("mismatch_id")
        return queryset.filter(Q(job_id=value) | Q(pk__in=found))
