"""Helpers shared by the reconciliation admin pages: the read-only change page, links, list
filters, the notes form, the way back to the operator's filtered list, starting a job."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IS_POPUP_VAR
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from cdcrecon.conf import MAX_SAMPLE_SIZE, settings
from reconciliation.choices import JobType, ValidationStrategy
from reconciliation.engine import Options
from reconciliation.filtersets import Iso8601Field
from reconciliation.jobs import (
    BadJobRequest,
    JobAlreadyRunning,
    build_parameters,
    create_job,
    enqueue_job,
)
from reconciliation.models import (
    Mismatch,
    ReconciliationJob,
    TableMapping,
)
from reconciliation.registry import UnknownTable, get_mapping

MISMATCH_PREVIEW_LIMIT = 50
RECENT_JOBS_IN_FILTER = 20
CHANGELIST_FILTERS = "_changelist_filters"  # Django's name for the list's preserved filters


def all_fields(fieldsets: Any) -> list[str]:
    """Every field named in ``fieldsets`` (the read-only admins show all of them)."""
    return [str(name) for _, options in fieldsets for name in options["fields"]]


class ReadOnlyChangeFormMixin:
    """A change page that only shows: no add, no delete, no save; a POST changes nothing.

    State changes are admin actions (with their intermediate forms), never an edited field.
    Subclasses add their page's context in ``read_only_context`` and may set
    ``read_only_message``, shown when someone posts the change form anyway.
    """

    read_only_message = ""

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return all_fields(self.fieldsets)  # type: ignore[attr-defined]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def read_only_context(self, request: HttpRequest, obj: Any) -> dict[str, Any]:
        return {}

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if request.method == "POST":  # nothing on the page is editable
            if self.read_only_message:
                self.message_user(request, self.read_only_message, messages.WARNING)  # type: ignore[attr-defined]
            return HttpResponseRedirect(request.get_full_path())
        context = dict(extra_context or {})
        obj = self.get_object(request, object_id) if object_id else None  # type: ignore[attr-defined]
        if obj is not None:
            context.update(self.read_only_context(request, obj))
        context.update(
            show_save=False, show_save_and_continue=False, show_save_and_add_another=False
        )
        return super().changeform_view(request, object_id, form_url, context)  # type: ignore[misc,no-any-return]


def changelist_filters(request: HttpRequest) -> str:
    """The filters of the list the operator came from, as a clean query string.

    Read from ``_changelist_filters`` (Django's preserved filters: in the change page's
    query string, or a hidden field of an action form).  Re-encoded, so it can only ever
    become the query string of our own changelist URL.
    """
    raw = request.POST.get(CHANGELIST_FILTERS) or request.GET.get(CHANGELIST_FILTERS) or ""
    query = QueryDict(raw, mutable=True)
    for name in (CHANGELIST_FILTERS, IS_POPUP_VAR, "_to_field"):
        query.pop(name, None)
    return query.urlencode()


def filtered_changelist_url(model_admin: admin.ModelAdmin, filters: str) -> str:
    opts = model_admin.model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    return f"{url}?{filters}" if filters else url


def change_url_in_list(model_admin: admin.ModelAdmin, pk: Any, filters: str) -> str:
    """An object's change page that keeps the list's filters (so "back" and actions return)."""
    opts = model_admin.model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk])
    return f"{url}?{urlencode({CHANGELIST_FILTERS: filters})}" if filters else url


def enqueue(job: ReconciliationJob) -> None:
    """Queue a job for a Celery worker once the transaction commits."""
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
    """The job that found the mismatch: only the latest jobs are listed (of the table chosen
    in the table filter, if any), never every job ever run; any job id works in the URL."""

    title = "job (latest)"
    parameter_name = "job"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        jobs = ReconciliationJob.objects.order_by("-started_at")
        table = request.GET.get(TableNameFilter.parameter_name)
        if table:
            jobs = jobs.filter(table_name=table)
        jobs = jobs.only("job_id", "table_name", "validation_strategy", "started_at")[
            :RECENT_JOBS_IN_FILTER
        ]
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


def default_window_text() -> str:
    """How TIMESTAMP_RANGE picks its window when none is given (the engine's rule)."""
    interval = settings.reconciliation.interval_minutes
    overlap = Options(consistency=1).window_overlap_minutes  # the engine's default
    return (
        f"Default window: the last {interval + overlap} minutes up to the moment the job "
        f"runs (RECONCILIATION_INTERVAL_MINUTES={interval} plus a {overlap}-minute overlap). "
        "Give either bound to move it; times without an offset are UTC."
    )


class JobOptionsForm(forms.Form):
    """The trigger options of *Reconcile now* and *Run again*: strategy, window, sample size.

    Checked by ``reconciliation.jobs.build_parameters``, the API trigger's own rule, so the
    admin accepts exactly what ``POST /reconciliation/trigger`` accepts.
    """

    strategy = forms.ChoiceField(
        choices=[("", "Each table's scheduled strategy"), *ValidationStrategy.choices],
        required=False,
        label="Validation strategy",
    )
    window_from = Iso8601Field(
        required=False,
        label="Window from",
        widget=forms.TextInput(attrs={"placeholder": "2025-11-25T10:00:00Z", "size": 26}),
        help_text="TIMESTAMP_RANGE only: window start, inclusive (ISO 8601).",
    )
    window_to = Iso8601Field(
        required=False,
        label="Window to",
        widget=forms.TextInput(attrs={"placeholder": "2025-11-25T11:00:00Z", "size": 26}),
        help_text="TIMESTAMP_RANGE only: window end, exclusive (ISO 8601).",
    )
    sample_size = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_SAMPLE_SIZE,
        label="Sample size",
        help_text="SAMPLE only: how many keys to sample.",
    )

    def __init__(self, *args: Any, blank_strategy_label: str | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        field = self.fields["strategy"]
        if blank_strategy_label and isinstance(field, forms.ChoiceField):
            field.choices = [("", blank_strategy_label), *ValidationStrategy.choices]
        sample = self.fields["sample_size"]
        sample.help_text = (
            f"SAMPLE only: how many keys to sample (default "
            f"RECONCILIATION_SAMPLE_SIZE = {settings.reconciliation.sample_size:,})."
        )
        sample.widget.attrs["placeholder"] = str(settings.reconciliation.sample_size)

    def parameters_for(self, strategy: str) -> dict[str, Any]:
        """``job.parameters`` for ``strategy`` (after ``is_valid``); BadJobRequest if the
        options do not apply to it."""
        data = self.cleaned_data
        return build_parameters(
            strategy,
            window_from=data.get("window_from"),
            window_to=data.get("window_to"),
            sample_size=data.get("sample_size"),
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        strategy = data.get("strategy")
        if not strategy:
            return data  # checked per table, against each table's strategy
        try:
            self.parameters_for(strategy)
        except BadJobRequest as exc:
            field = {"from": "window_from", "to": "window_to"}.get(exc.field, exc.field)
            self.add_error(field if field in self.fields else None, str(exc))
        return data


def job_options_page(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    form: JobOptionsForm,
    *,
    title: str,
    intro: str,
    targets: list[str],
) -> TemplateResponse:
    """The intermediate page of *Reconcile now* and *Run again*."""
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": title,
        "intro": intro,
        "targets": targets,
        "form": form,
        "default_window": default_window_text(),
        "action": request.POST.get("action", ""),
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "select_across": request.POST.get("select_across", "0"),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/reconciliation/job_options_form.html", context)


def start_jobs(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    form: JobOptionsForm,
    default_strategies: dict[str, str],
) -> None:
    """Start one job per table of ``default_strategies`` (table name -> the strategy used when
    the form names none) with the form's window and sample size; each outcome a message."""
    for table_name, default in default_strategies.items():
        strategy = form.cleaned_data["strategy"] or default
        try:
            parameters = form.parameters_for(strategy)
        except BadJobRequest as exc:
            model_admin.message_user(
                request, f"{table_name} ({strategy}): {exc} Not started.", messages.ERROR
            )
            continue
        start_job(model_admin, request, table_name, strategy, parameters)


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
