"""The operator's home: mismatches, jobs and table mappings in the Django admin.

Nothing here edits captured data or deletes a mismatch or a job.  Every state change goes
through the same model methods and plain functions the API uses: ``Mismatch.resolve`` and
``reopen``, ``reconciliation.repair.repair_mismatch``, ``reconciliation.jobs.create_job``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from cassandra import DriverException
from cassandra.cluster import NoHostAvailable
from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db.models import Count, FloatField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from cdcrecon.conf import settings
from reconciliation.admin_views import (
    badge,
    diff_rows,
    drift_badge,
    overview_view,
    summarise,
)
from reconciliation.choices import JobStatus, JobType, ResolutionStatus, ValidationStrategy
from reconciliation.connections import StoreUnavailable, cassandra_session, target_connection
from reconciliation.engine.identifiers import UnsafeIdentifier
from reconciliation.jobs import JobAlreadyRunning, create_job
from reconciliation.models import (
    CLOSED_STATUSES,
    AlreadyResolved,
    Mismatch,
    ReconciliationJob,
    TableMapping,
)
from reconciliation.registry import TableNotFound, UnknownTable, discover_key_columns, get_mapping
from reconciliation.repair import RepairFailed, repair_mismatch

MISMATCH_PREVIEW_LIMIT = 50


def _all_fields(fieldsets: Any) -> list[str]:
    """Every field named in ``fieldsets`` (the read-only admins show all of them)."""
    return [str(name) for _, options in fieldsets for name in options["fields"]]


def enqueue(job: ReconciliationJob) -> None:
    """Queue a job for a Celery worker once the transaction commits (tasks imported lazily)."""
    from reconciliation.tasks import enqueue_job

    enqueue_job(job)


def _link(url: str, text: Any) -> SafeString:
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


def _already_closed_message(mismatch: Mismatch) -> str:
    who = mismatch.resolved_by.get_username() if mismatch.resolved_by else "someone"
    when = f" at {mismatch.resolved_at:%Y-%m-%d %H:%M:%S} UTC" if mismatch.resolved_at else ""
    return (
        f"{mismatch.table_name} {mismatch.primary_key_value}: already resolved by {who}{when} "
        f"({mismatch.get_resolution_status_display()})."
    )


@admin.register(Mismatch)
class MismatchAdmin(admin.ModelAdmin):
    list_display = [
        "table_name",
        "key",
        "type_badge",
        "status_badge",
        "job_link",
        "detected_at",
        "resolved_by",
    ]
    list_display_links = ["key"]
    list_filter = [
        TableNameFilter,
        "mismatch_type",
        "resolution_status",
        JobFilter,
        "detected_at",
    ]
    search_fields = ["primary_key_value"]
    search_help_text = "Search by primary key (part of the key text or JSON array)."
    list_select_related = ["job", "resolved_by"]
    date_hierarchy = "detected_at"
    ordering = ["-detected_at", "mismatch_id"]
    list_per_page = 50
    show_full_result_count = False  # COUNT(*) of a big mismatch table on every page is slow
    actions = ["mark_resolved", "mark_ignored", "reopen", "repair_from_source"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "mismatch_id",
                    "table_name",
                    "primary_key_value",
                    "type_badge",
                    "job_link",
                    "detected_at",
                ]
            },
        ),
        (
            "Resolution",
            {
                "fields": [
                    "status_badge",
                    "resolution_notes",
                    "resolved_by",
                    "resolved_at",
                    "erased_at",
                ]
            },
        ),
    ]

    # Read-only: nothing captured can be edited, added or deleted from here.
    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return _all_fields(self.fieldsets)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_repair_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("reconciliation.repair_mismatch")

    @admin.display(description="key", ordering="primary_key_value")
    def key(self, obj: Mismatch) -> str:
        text = obj.primary_key_value
        return text if len(text) <= 60 else f"{text[:57]}…"

    @admin.display(description="type", ordering="mismatch_type")
    def type_badge(self, obj: Mismatch) -> SafeString:
        return badge(obj.mismatch_type, obj.get_mismatch_type_display())

    @admin.display(description="status", ordering="resolution_status")
    def status_badge(self, obj: Mismatch) -> SafeString:
        return badge(obj.resolution_status, obj.get_resolution_status_display())

    @admin.display(description="job", ordering="job__started_at")
    def job_link(self, obj: Mismatch) -> SafeString:
        job = obj.job
        return _link(
            job_url(job.job_id), f"{job.validation_strategy} {job.started_at:%Y-%m-%d %H:%M}"
        )

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if request.method == "POST":  # nothing on the page is editable; state changes are actions
            self.message_user(
                request,
                "Mismatches are read-only here: use Resolve, Ignore, Reopen or Repair.",
                messages.WARNING,
            )
            return HttpResponseRedirect(request.get_full_path())
        context = dict(extra_context or {})
        obj = self.get_object(request, object_id) if object_id else None
        if obj is not None:
            mapping = TableMapping.objects.filter(name=obj.table_name).first()
            rows = diff_rows(obj, mapping)
            context.update(
                title="Mismatch",
                mapping=mapping,
                diff_rows=rows,
                differing_columns=[r.column for r in rows if r.differs],
                checksums_match=bool(obj.cassandra_checksum)
                and obj.cassandra_checksum == obj.postgres_checksum,
                job_admin_url=job_url(obj.job_id),
                is_pending=obj.resolution_status == ResolutionStatus.PENDING,
                can_resolve=self.has_change_permission(request, obj),
                can_repair=self.has_repair_permission(request),
                changelist_url=reverse("admin:reconciliation_mismatch_changelist"),
                action_checkbox_name=helpers.ACTION_CHECKBOX_NAME,
            )
        context.update(
            show_save=False, show_save_and_continue=False, show_save_and_add_another=False
        )
        return super().changeform_view(request, object_id, form_url, context)

    # --- actions with an intermediate form ------------------------------------------

    def _notes_form(
        self,
        request: HttpRequest,
        queryset: QuerySet[Mismatch],
        *,
        title: str,
        button: str,
        apply: Callable[[Mismatch, str], None],
    ) -> TemplateResponse | None:
        if "apply" in request.POST:
            form = NotesForm(request.POST)
            if form.is_valid():
                self._apply_each(request, queryset, form.cleaned_data["notes"], apply)
                return None
            self.message_user(request, "Nothing was changed: notes are required.", messages.ERROR)
        else:
            form = NotesForm()
        return self._intermediate(
            request,
            queryset,
            "admin/reconciliation/mismatch/notes_form.html",
            title=title,
            button=button,
            form=form,
        )

    def _intermediate(
        self, request: HttpRequest, queryset: QuerySet[Mismatch], template: str, **extra: Any
    ) -> TemplateResponse:
        shown = list(queryset.select_related("resolved_by")[:25])
        total = queryset.count()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "action": request.POST.get("action", ""),
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "mismatches": shown,
            "total": total,
            "more": total - len(shown),
            **extra,
        }
        return TemplateResponse(request, template, context)

    def _apply_each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Mismatch],
        notes: str,
        apply: Callable[[Mismatch, str], None],
    ) -> None:
        done: list[str] = []
        refused: list[str] = []
        for mismatch in queryset.select_related(None).iterator():
            try:
                apply(mismatch, notes)
            except AlreadyResolved as exc:
                refused.append(_already_closed_message(exc.mismatch))
            except ValueError as exc:
                refused.append(f"{mismatch.table_name} {mismatch.primary_key_value}: {exc}")
            else:
                done.append(mismatch.primary_key_value)
        if done:
            self.message_user(
                request, f"{len(done)} mismatch(es) updated: {summarise(done)}.", messages.SUCCESS
            )
        for message in refused[:10]:
            self.message_user(request, message, messages.WARNING)
        if len(refused) > 10:
            self.message_user(
                request, f"… and {len(refused) - 10} more were not changed.", messages.WARNING
            )

    @admin.action(description="Mark selected mismatches resolved…", permissions=["change"])
    def mark_resolved(
        self, request: HttpRequest, queryset: QuerySet[Mismatch]
    ) -> TemplateResponse | None:
        return self._notes_form(
            request,
            queryset,
            title="Mark mismatches resolved",
            button="Mark resolved",
            apply=lambda m, notes: m.resolve(request.user, ResolutionStatus.MANUAL_RESOLVED, notes),
        )

    @admin.action(description="Ignore selected mismatches…", permissions=["change"])
    def mark_ignored(
        self, request: HttpRequest, queryset: QuerySet[Mismatch]
    ) -> TemplateResponse | None:
        return self._notes_form(
            request,
            queryset,
            title="Ignore mismatches",
            button="Ignore",
            apply=lambda m, notes: m.resolve(request.user, ResolutionStatus.IGNORED, notes),
        )

    @admin.action(description="Reopen selected resolved mismatches…", permissions=["change"])
    def reopen(self, request: HttpRequest, queryset: QuerySet[Mismatch]) -> TemplateResponse | None:
        return self._notes_form(
            request,
            queryset,
            title="Reopen mismatches",
            button="Reopen",
            apply=lambda m, notes: m.reopen(request.user, notes),
        )

    @admin.action(description="Repair selected from source (Cassandra)…", permissions=["repair"])
    def repair_from_source(
        self, request: HttpRequest, queryset: QuerySet[Mismatch]
    ) -> TemplateResponse | None:
        if "apply" not in request.POST:
            return self._intermediate(
                request,
                queryset,
                "admin/reconciliation/mismatch/repair_confirm.html",
                title="Repair mismatches from Cassandra",
                closed_statuses=list(CLOSED_STATUSES),
            )
        repaired = 0
        for mismatch in queryset.select_related(None).iterator():
            label = f"{mismatch.table_name} {mismatch.primary_key_value}"
            try:
                result = repair_mismatch(mismatch, request.user)
            except RepairFailed as exc:
                level = messages.WARNING if exc.code == "already_resolved" else messages.ERROR
                suffix = "" if exc.code == "already_resolved" else " It stays PENDING."
                self.message_user(request, f"Repair of {label} failed: {exc.detail}{suffix}", level)
            else:
                repaired += 1
                self.message_user(request, f"Repaired {label}. {result.note}", messages.SUCCESS)
        if repaired > 1:
            self.message_user(request, f"{repaired} mismatches repaired.", messages.SUCCESS)
        return None


# --------------------------------------------------------------------------------------
# Jobs


def _threshold_subquery(field: str, default: float) -> Coalesce:
    return Coalesce(
        Subquery(TableMapping.objects.filter(name=OuterRef("table_name")).values(field)[:1]),
        Value(default),
        output_field=FloatField(),
    )


@admin.register(ReconciliationJob)
class ReconciliationJobAdmin(admin.ModelAdmin):
    list_display = [
        "started_at",
        "table_name",
        "validation_strategy",
        "job_type",
        "status_badge",
        "counts",
        "mismatches_link",
        "drift",
        "alert",
        "duration",
        "progress_bar",
    ]
    list_display_links = ["started_at"]
    list_filter = [
        "status",
        TableNameFilter,
        "validation_strategy",
        "job_type",
        "alert_level",
        "alert_fired",
        "started_at",
    ]
    search_fields = ["table_name"]
    date_hierarchy = "started_at"
    list_select_related = ["requested_by"]
    list_per_page = 50
    actions = ["run_again_now"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "job_id",
                    "table_name",
                    "validation_strategy",
                    "job_type",
                    "parameters",
                    "status_badge",
                    "requested_by",
                    "started_at",
                    "completed_at",
                    "duration",
                    "heartbeat_at",
                    "progress_bar",
                ]
            },
        ),
        (
            "Result",
            {
                "fields": [
                    "cassandra_row_count",
                    "postgres_row_count",
                    "keys_examined",
                    "mismatch_count",
                    "transient_count",
                    "drift",
                    "confidence_interval",
                    "alert",
                    "alert_fired",
                ]
            },
        ),
        ("Problems", {"fields": ["error_message", "schema_warnings_list"]}),
        ("Mismatches found", {"fields": ["mismatches_preview"]}),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return _all_fields(self.fieldsets)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs are started by "run again now", "reconcile now", the API or beat

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deleting a job would delete its mismatches

    def has_trigger_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("reconciliation.add_reconciliationjob")

    def get_queryset(self, request: HttpRequest) -> QuerySet[ReconciliationJob]:
        config = settings.reconciliation
        return (
            super()
            .get_queryset(request)
            .annotate(
                warning_at=_threshold_subquery("warning_threshold", config.drift_warning_threshold),
                critical_at=_threshold_subquery(
                    "critical_threshold", config.drift_critical_threshold
                ),
            )
        )

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if request.method == "POST":
            return HttpResponseRedirect(request.get_full_path())
        context = {
            **(extra_context or {}),
            "title": "Reconciliation job",
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "can_trigger": self.has_trigger_permission(request),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return super().changeform_view(request, object_id, form_url, context)

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: ReconciliationJob) -> SafeString:
        return badge(obj.status, obj.get_status_display())

    @admin.display(description="rows C / P")
    def counts(self, obj: ReconciliationJob) -> str:
        def n(value: int | None) -> str:
            return "—" if value is None else f"{value:,}"

        return f"{n(obj.cassandra_row_count)} / {n(obj.postgres_row_count)}"

    @admin.display(description="mismatches", ordering="mismatch_count")
    def mismatches_link(self, obj: ReconciliationJob) -> SafeString | str:
        if not obj.mismatch_count:
            return "0"
        return _link(mismatch_list_url(job=obj.job_id), f"{obj.mismatch_count:,}")

    @admin.display(description="drift", ordering="drift_percentage")
    def drift(self, obj: ReconciliationJob) -> SafeString:
        warning = getattr(obj, "warning_at", None)
        critical = getattr(obj, "critical_at", None)
        if warning is None or critical is None:
            mapping = TableMapping.objects.filter(name=obj.table_name).first()
            config = settings.reconciliation
            warning = (
                mapping.effective_warning_threshold if mapping else config.drift_warning_threshold
            )
            critical = (
                mapping.effective_critical_threshold if mapping else config.drift_critical_threshold
            )
        return drift_badge(obj.drift_percentage, warning, critical)

    @admin.display(description="95% CI")
    def confidence_interval(self, obj: ReconciliationJob) -> str:
        if obj.drift_ci_low is None or obj.drift_ci_high is None:
            return "—"
        return f"{obj.drift_ci_low:.2f}% – {obj.drift_ci_high:.2f}%"

    @admin.display(description="alert", ordering="alert_level")
    def alert(self, obj: ReconciliationJob) -> SafeString | str:
        if obj.alert_level == "NONE":
            return "—"
        return badge(obj.alert_level, obj.get_alert_level_display())

    @admin.display(description="duration")
    def duration(self, obj: ReconciliationJob) -> str:
        end = obj.completed_at or (timezone.now() if obj.status == JobStatus.RUNNING else None)
        if end is None:
            return "—"
        seconds = int((end - obj.started_at).total_seconds())
        text = (
            f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
            if seconds >= 3600
            else (f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s")
        )
        return f"{text} so far" if obj.completed_at is None else text

    @admin.display(description="progress")
    def progress_bar(self, obj: ReconciliationJob) -> SafeString | str:
        if obj.status != JobStatus.RUNNING:
            return "—"
        age = int((timezone.now() - obj.heartbeat_at).total_seconds())
        return format_html(
            '<progress value="{}" max="1" style="width:90px"></progress> {}% '
            '<span style="color:#888" title="last heartbeat">({}s ago)</span>',
            f"{obj.progress:.3f}",
            f"{obj.progress * 100:.0f}",
            age,
        )

    @admin.display(description="schema warnings")
    def schema_warnings_list(self, obj: ReconciliationJob) -> SafeString | str:
        warnings = obj.schema_warnings or []
        if not warnings:
            return "—"
        return format_html(
            '<ul class="cdc-schema-warnings">{}</ul>',
            format_html_join("", "<li>{}</li>", ((str(w),) for w in warnings)),
        )

    @admin.display(description="mismatches")
    def mismatches_preview(self, obj: ReconciliationJob) -> SafeString | str:
        mismatches = list(
            obj.mismatches.select_related("resolved_by").order_by("detected_at", "mismatch_id")[
                :MISMATCH_PREVIEW_LIMIT
            ]
        )
        if not mismatches:
            return "None stored (ROW_COUNT jobs and clean runs store no row mismatches)."
        total = obj.mismatches.count()
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:reconciliation_mismatch_change", args=[m.mismatch_id]),
                    m.primary_key_value,
                    badge(m.mismatch_type, m.get_mismatch_type_display()),
                    badge(m.resolution_status, m.get_resolution_status_display()),
                    f"{m.detected_at:%Y-%m-%d %H:%M:%S}",
                )
                for m in mismatches
            ),
        )
        footer = format_html(
            '<p class="cdc-mismatch-more">Showing {} of {}. <a href="{}">All {} mismatches of '
            "this job in the mismatch list →</a></p>",
            len(mismatches),
            f"{total:,}",
            mismatch_list_url(job=obj.job_id),
            f"{total:,}",
        )
        return format_html(
            '<table class="cdc-job-mismatches"><thead><tr><th>key</th><th>type</th>'
            "<th>status</th><th>detected</th></tr></thead><tbody>{}</tbody></table>{}",
            rows,
            footer,
        )

    @admin.action(description="Run again now (same table and strategy)", permissions=["trigger"])
    def run_again_now(self, request: HttpRequest, queryset: QuerySet[ReconciliationJob]) -> None:
        seen: set[str] = set()
        for old in queryset.order_by("-started_at"):
            if old.table_name in seen:
                continue
            seen.add(old.table_name)
            _start_job(self, request, old.table_name, old.validation_strategy, old.parameters)


def _start_job(
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


class ColumnListField(forms.Field):
    """A JSON list of names edited as comma-separated text ("_cdc_*, internal_note")."""

    widget = forms.TextInput(attrs={"size": 60})

    def prepare_value(self, value: Any) -> str:
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return str(value or "")

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, list):
            return [str(v) for v in value]
        return [part.strip() for part in str(value or "").split(",") if part.strip()]


class TableMappingForm(forms.ModelForm):
    excluded_columns = ColumnListField(
        required=False,
        help_text="Comma-separated column names or shell patterns left out of comparison "
        "and repair, e.g. _cdc_*",
    )

    class Meta:
        model = TableMapping
        fields = [
            "name",
            "cassandra_keyspace",
            "cassandra_table",
            "postgres_schema",
            "postgres_table",
            "timestamp_column",
            "excluded_columns",
            "warning_threshold",
            "critical_threshold",
            "scheduled_strategy",
            "enabled",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.instance.pk:
            self.fields["cassandra_keyspace"].initial = settings.cassandra.keyspace
            self.fields["postgres_schema"].initial = settings.target.schema
        self.discovered: tuple[list[str], list[str]] | None = None

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        keyspace, table = data.get("cassandra_keyspace"), data.get("cassandra_table")
        warning, critical = data.get("warning_threshold"), data.get("critical_threshold")
        config = settings.reconciliation
        effective_warning = config.drift_warning_threshold if warning is None else warning
        effective_critical = config.drift_critical_threshold if critical is None else critical
        if effective_warning > effective_critical:
            self.add_error(
                "warning_threshold",
                f"The warning threshold ({effective_warning:g}%) must not exceed the critical "
                f"threshold ({effective_critical:g}%).",
            )
        if not keyspace or not table:
            return data
        instance = self.instance
        moved = (keyspace, table) != (instance.cassandra_keyspace, instance.cassandra_table)
        if instance.pk and not moved and instance.partition_key_columns:
            return data
        try:
            self.discovered = discover_key_columns(cassandra_session(), keyspace, table)
        except StoreUnavailable as exc:
            raise ValidationError(
                f"Cannot discover the key columns: {exc}. Nothing was saved; try again when "
                "Cassandra is reachable."
            ) from exc
        except (TableNotFound, UnsafeIdentifier) as exc:
            self.add_error("cassandra_table", f"{exc} Check the keyspace and table names.")
        except (DriverException, NoHostAvailable) as exc:
            raise ValidationError(
                f"Cannot discover the key columns: Cassandra failed: {exc}"
            ) from exc
        return data

    def save(self, commit: bool = True) -> TableMapping:
        mapping: TableMapping = super().save(commit=False)
        if self.discovered is not None:
            mapping.partition_key_columns, mapping.clustering_columns = self.discovered
        if commit:
            mapping.save()
        return mapping


class ReconcileNowForm(forms.Form):
    strategy = forms.ChoiceField(
        choices=[("", "Each table's scheduled strategy"), *ValidationStrategy.choices],
        required=False,
        label="Validation strategy",
    )


@admin.register(TableMapping)
class TableMappingAdmin(admin.ModelAdmin):
    form = TableMappingForm
    list_display = [
        "name",
        "cassandra",
        "postgres",
        "key",
        "scheduled_strategy",
        "enabled",
        "thresholds",
        "last_job",
        "open_mismatches_link",
    ]
    list_filter = ["enabled", "scheduled_strategy"]
    search_fields = ["name", "cassandra_table", "postgres_table"]
    readonly_fields = ["partition_key_columns", "clustering_columns", "created_at", "updated_at"]
    actions = ["reconcile_now"]
    fieldsets = [
        (None, {"fields": ["name", "enabled", "scheduled_strategy"]}),
        ("Source (Cassandra)", {"fields": ["cassandra_keyspace", "cassandra_table"]}),
        ("Target (PostgreSQL)", {"fields": ["postgres_schema", "postgres_table"]}),
        (
            "Keys (discovered from Cassandra's system_schema on save)",
            {"fields": ["partition_key_columns", "clustering_columns"]},
        ),
        (
            "Comparison",
            {
                "fields": [
                    "timestamp_column",
                    "excluded_columns",
                    "warning_threshold",
                    "critical_threshold",
                ]
            },
        ),
        ("History", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def has_trigger_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("reconciliation.add_reconciliationjob")

    def get_queryset(self, request: HttpRequest) -> QuerySet[TableMapping]:
        latest = ReconciliationJob.objects.filter(table_name=OuterRef("name")).order_by(
            "-started_at"
        )
        open_count = (
            Mismatch.objects.filter(
                table_name=OuterRef("name"), resolution_status=ResolutionStatus.PENDING
            )
            .order_by()
            .values("table_name")
            .annotate(n=Count("mismatch_id"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                last_job_id=Subquery(latest.values("job_id")[:1]),
                last_job_status=Subquery(latest.values("status")[:1]),
                last_job_drift=Subquery(latest.values("drift_percentage")[:1]),
                open_mismatches=Coalesce(Subquery(open_count), 0),
            )
        )

    def get_urls(self) -> list[URLPattern]:
        overview = path(
            "overview/",
            self.admin_site.admin_view(self.overview),
            name="reconciliation_overview",
        )
        return [overview, *super().get_urls()]

    def overview(self, request: HttpRequest) -> TemplateResponse:
        if not request.user.has_perm("reconciliation.view_reconciliationjob"):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        return overview_view(
            request,
            {**self.admin_site.each_context(request), "opts": self.model._meta},
        )

    def save_model(self, request: HttpRequest, obj: TableMapping, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        problem = _target_table_problem(obj)
        if problem:
            self.message_user(request, problem, messages.WARNING)

    @admin.display(description="Cassandra")
    def cassandra(self, obj: TableMapping) -> str:
        return f"{obj.cassandra_keyspace}.{obj.cassandra_table}"

    @admin.display(description="PostgreSQL")
    def postgres(self, obj: TableMapping) -> str:
        return f"{obj.postgres_schema}.{obj.postgres_table}"

    @admin.display(description="key")
    def key(self, obj: TableMapping) -> str:
        if not obj.partition_key_columns:
            return "(not discovered yet)"
        partition = ", ".join(obj.partition_key_columns)
        clustering = ", ".join(obj.clustering_columns)
        return f"(({partition}){', ' + clustering if clustering else ''})"

    @admin.display(description="warn / crit")
    def thresholds(self, obj: TableMapping) -> str:
        text = f"{obj.effective_warning_threshold:g}% / {obj.effective_critical_threshold:g}%"
        defaults = obj.warning_threshold is None and obj.critical_threshold is None
        return f"{text} (default)" if defaults else text

    @admin.display(description="last job")
    def last_job(self, obj: TableMapping) -> SafeString | str:
        job_id = getattr(obj, "last_job_id", None)
        if job_id is None:
            return "never run"
        status = obj.last_job_status  # type: ignore[attr-defined]
        return format_html(
            '<a href="{}">{}</a> {}',
            job_url(job_id),
            badge(status, JobStatus(status).label),
            drift_badge(
                obj.last_job_drift,  # type: ignore[attr-defined]
                obj.effective_warning_threshold,
                obj.effective_critical_threshold,
            ),
        )

    @admin.display(description="open mismatches", ordering="open_mismatches")
    def open_mismatches_link(self, obj: TableMapping) -> SafeString | str:
        count = getattr(obj, "open_mismatches", 0)
        if not count:
            return "0"
        return _link(
            mismatch_list_url(table=obj.name, resolution_status__exact=ResolutionStatus.PENDING),
            f"{count:,}",
        )

    @admin.action(description="Reconcile now…", permissions=["trigger"])
    def reconcile_now(
        self, request: HttpRequest, queryset: QuerySet[TableMapping]
    ) -> TemplateResponse | None:
        if "apply" in request.POST:
            form = ReconcileNowForm(request.POST)
            if form.is_valid():
                for mapping in queryset:
                    strategy = form.cleaned_data["strategy"] or mapping.scheduled_strategy
                    _start_job(self, request, mapping.name, strategy)
                return None
        else:
            form = ReconcileNowForm()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Reconcile now",
            "form": form,
            "mappings": list(queryset),
            "action": request.POST.get("action", ""),
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(
            request, "admin/reconciliation/tablemapping/reconcile_form.html", context
        )


def _target_table_problem(mapping: TableMapping) -> str | None:
    """Why the mapped PostgreSQL table cannot be used yet, or None (a warning, not an error)."""
    name = f"{mapping.postgres_schema}.{mapping.postgres_table}"
    try:
        with target_connection() as conn:
            found = conn.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
                "AND table_name = %s",
                (mapping.postgres_schema, mapping.postgres_table),
            ).fetchone()
    except StoreUnavailable as exc:
        return f"Saved, but the target table {name} could not be checked: {exc}"
    if found is None:
        return f"Saved, but the PostgreSQL table {name} does not exist yet: jobs will fail."
    return None
