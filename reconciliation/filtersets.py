"""Filters for jobs and mismatches, shared by the REST API and the admin (NetBox style).

The query parameter names are the guide's: ``table``, ``status``, ``from_date``, ``to_date``
for jobs; ``table``, ``mismatch_type``, ``resolution_status`` for mismatches.  A bad value
(an unknown enum member, a date that is not ISO 8601, ``from_date`` after ``to_date``) makes
the filterset invalid, which the API turns into a 400 naming the parameter.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import django_filters
from django import forms
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from reconciliation.choices import JobStatus, MismatchType, ResolutionStatus
from reconciliation.models import JobFinding, Mismatch, ReconciliationJob


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


class DateRangeForm(forms.Form):
    """Refuses a ``from_date`` later than ``to_date``."""

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("from_date"), data.get("to_date")
        if start and end and start > end:
            self.add_error("from_date", "from_date must not be later than to_date.")
        return data


class ReconciliationJobFilterSet(django_filters.FilterSet):
    table = django_filters.CharFilter(
        field_name="table_name", help_text="Only jobs of this table (exact name)."
    )
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

    class Meta:
        model = ReconciliationJob
        fields = ["table", "status", "from_date", "to_date"]
        form = DateRangeForm


class MismatchFilterSet(django_filters.FilterSet):
    table = django_filters.CharFilter(
        field_name="table_name", help_text="Only mismatches of this table (exact name)."
    )
    mismatch_type = django_filters.ChoiceFilter(choices=MismatchType.choices)
    resolution_status = django_filters.ChoiceFilter(choices=ResolutionStatus.choices)
    job_id = django_filters.UUIDFilter(
        method="filter_found_by_job",
        help_text="Only mismatches found by this job (first found, or found again).",
    )

    class Meta:
        model = Mismatch
        fields = ["table", "mismatch_type", "resolution_status", "job_id"]

    def filter_found_by_job(self, queryset: QuerySet[Any], name: str, value: Any) -> QuerySet[Any]:
        if value is None:
            return queryset
        found = JobFinding.objects.filter(job_id=value).values("mismatch_id")
        return queryset.filter(Q(job_id=value) | Q(pk__in=found))
