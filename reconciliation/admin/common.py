"""Helpers shared by the reconciliation admin pages: links, list filters, the notes form,
starting a job."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from cdcrecon.conf import settings
from reconciliation.choices import JobType
from reconciliation.jobs import JobAlreadyRunning, create_job
from reconciliation.models import (
    Mismatch,
    ReconciliationJob,
    TableMapping,
)
from reconciliation.registry import UnknownTable, get_mapping

MISMATCH_PREVIEW_LIMIT = 50


def all_fields(fieldsets: Any) -> list[str]:
    """Every field named in ``fieldsets`` (the read-only admins show all of them)."""
    return [str(name) for _, options in fieldsets for name in options["fields"]]


def enqueue(job: ReconciliationJob) -> None:
    """Queue a job for a Celery worker once the transaction commits (tasks imported lazily)."""
    from reconciliation.tasks import enqueue_job

    enqueue_job(job)


def link(url: str, text: Any) -> SafeString:
    return format_html('<a href="{}">{}</a>', url, text)


def mismatch_list_url(**filters: Any) -> str:
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    return f"{reverse('admin:reconciliation_mismatch_changelist')}?{query}"


def job_url(job_id: Any) -> str:
    return reverse("admin:reconciliation_reconciliationjob_change", args=[job_id])


# --------------------------------------------------------------------------------------
# Filters


class TableNameFilter(admin.SimpleListFilter):
    """The table, among the registered and configured ones (``?table=users``, like the API)."""

    title = "table"
    parameter_name = "table"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = set(TableMapping.objects.values_list("name", flat=True))
        names.update(settings.reconciliation.tables)
        return [(name, name) for name in sorted(names)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value():
            return queryset.filter(table_name=self.value())
        return queryset


class JobFilter(admin.SimpleListFilter):
    """The job that found the mismatch: the latest jobs are listed, any job id works."""

    title = "job"
    parameter_name = "job"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        jobs = ReconciliationJob.objects.order_by("-started_at")[:15]
        choices = [(str(job.job_id), str(job)) for job in jobs]
        value = self.value()
        if value and value not in dict(choices):
            choices.insert(0, (value, f"job {value[:8]}…"))
        return choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if not self.value():
            return queryset
        try:
            return queryset.filter(job_id=uuid.UUID(self.value()))
        except ValueError:
            return queryset.none()


# --------------------------------------------------------------------------------------
# Mismatches


class NotesForm(forms.Form):
    notes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
        strip=True,
        error_messages={"required": "Notes are required: say what was done, or why it is ignored."},
        help_text="Recorded on every selected mismatch with your name and the time.",
    )


def already_closed_message(mismatch: Mismatch) -> str:
    who = mismatch.resolved_by.get_username() if mismatch.resolved_by else "someone"
    when = f" at {mismatch.resolved_at:%Y-%m-%d %H:%M:%S} UTC" if mismatch.resolved_at else ""
    return (
        f"{mismatch.table_name} {mismatch.primary_key_value}: already resolved by {who}{when} "
        f"({mismatch.get_resolution_status_display()})."
    )


def start_job(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    table_name: str,
    strategy: str,
    parameters: dict[str, Any] | None = None,
) -> ReconciliationJob | None:
    """create_job + enqueue for one table, reporting the outcome as an admin message."""
    try:
        mapping = get_mapping(table_name)
        job = create_job(
            mapping,
            strategy,
            job_type=JobType.MANUAL,
            parameters=dict(parameters or {}),
            requested_by=request.user,
        )
    except UnknownTable as exc:
        model_admin.message_user(request, str(exc), messages.ERROR)
        return None
    except JobAlreadyRunning as exc:
        model_admin.message_user(
            request,
            format_html(
                '{} <a href="{}">Open the running job</a>.', str(exc), job_url(exc.job.job_id)
            ),
            messages.WARNING,
        )
        return None
    enqueue(job)
    model_admin.message_user(
        request,
        format_html(
            'Started a {} job for {}: <a href="{}">{}</a>.',
            strategy,
            table_name,
            job_url(job.job_id),
            job.job_id,
        ),
        messages.SUCCESS,
    )
    return job


# --------------------------------------------------------------------------------------
# Table mappings
