"""The reconciliation job admin: counts, drift against thresholds, progress, segments, what
the repair policy did.  Its actions (run again, resume) are ``admin.job_actions``."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin import helpers
from django.db.models import (
    FloatField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from cdcrecon.conf import settings
from reconciliation.admin.common import (
    MISMATCH_PREVIEW_LIMIT,
    ReadOnlyChangeFormMixin,
    TableNameFilter,
    link,
    mismatch_list_url,
)
from reconciliation.admin.forensics import job_panel
from reconciliation.admin.job_actions import FROM_JOB_PAGE, JobActions
from reconciliation.admin.segments import segments_context
from reconciliation.admin.views import (
    badge,
    drift_badge,
    inconclusive_badge,
    job_status_badge,
)
from reconciliation.choices import JobStatus
from reconciliation.models import (
    FULL_CHECK_STRATEGIES,
    Mismatch,
    ReconciliationJob,
    TableMapping,
    Thresholds,
    thresholds_for_table,
)
from reconciliation.presenters import job_segment_counts, requested_by_name
from reconciliation.repair.runs import describe_run


def _threshold_subquery(field: str, default: float) -> Coalesce:
    return Coalesce(
        Subquery(TableMapping.objects.filter(name=OuterRef("table_name")).values(field)[:1]),
        Value(default),
        output_field=FloatField(),
    )


#: The policy's actions listed on a job's page (all of them: the job's ``repairs``).
REPAIR_ACTIONS_SHOWN = 50


@admin.register(ReconciliationJob)
class ReconciliationJobAdmin(ReadOnlyChangeFormMixin, JobActions):
    # The signal columns (status, drift, alert, mismatches) first: they stay on screen at
    # 1366 px beside the filter panel; the details follow and may scroll.
    list_display = [
        "started_at",
        "table_name",
        "status_badge",
        "drift",
        "alert",
        "mismatches_link",
        "phase",
        "validation_strategy",
        "counts",
        "duration",
        "progress_bar",
        "job_type",
        "started_by",
    ]
    list_display_links = ["started_at"]
    list_filter = [
        "status",
        "phase",
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
    actions = ["run_again_now", "resume_failed_jobs"]
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
                    "phase",
                    "started_by",
                    "started_at",
                    "completed_at",
                    "duration",
                    "heartbeat_at",
                    "progress_bar",
                    "segments_progress",
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
                    "read_rate",
                    "mismatch_count",
                    "transient_count",
                    "in_flight_count",
                    "expired_count",
                    "recheck",
                    "drift",
                    "confidence_interval",
                    "full_check_verdict",
                    "alert",
                    "alert_fired",
                ]
            },
        ),
        ("Repair policy", {"fields": ["repair_policy_run", "repair_actions"]}),
        ("Problems", {"fields": ["error_message", "schema_warnings_list"]}),
        ("Mismatches found", {"fields": ["mismatches_preview"]}),
    ]

    # Read-only (ReadOnlyChangeFormMixin): jobs are started by "run again", "reconcile now",
    # the API or beat, and never deleted (that would delete their mismatches).

    def has_trigger_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("reconciliation.add_reconciliationjob")

    def get_queryset(self, request: HttpRequest) -> QuerySet[ReconciliationJob]:
        defaults = Thresholds.effective()
        return (
            super()
            .get_queryset(request)
            .annotate(
                warning_at=_threshold_subquery("warning_threshold", defaults.warning),
                critical_at=_threshold_subquery("critical_threshold", defaults.critical),
            )
        )

    def read_only_context(self, request: HttpRequest, obj: ReconciliationJob) -> dict[str, Any]:
        can_trigger = self.has_trigger_permission(request)
        return {
            "title": "Reconciliation job",
            "can_trigger": can_trigger,
            "can_resume": can_trigger and obj.status == JobStatus.FAILED,
            "from_job_page": FROM_JOB_PAGE,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "forensics": job_panel(obj),
            **segments_context(obj),
        }

    @admin.display(description="segments")
    def segments_progress(self, obj: ReconciliationJob) -> str:
        counts = job_segment_counts(obj)
        total, done = counts["segments_total"], counts["segments_done"]
        if not total:
            return "— (not split into segments: SAMPLE, or not planned yet)"
        return f"{done:,} of {total:,} token ranges compared"

    @admin.display(description="started by", ordering="requested_by__username")
    def started_by(self, obj: ReconciliationJob) -> str:
        return requested_by_name(obj) or "— (command line)"

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: ReconciliationJob) -> SafeString:
        return job_status_badge(obj)  # "inconclusive" (grey) when it examined nothing

    @admin.display(description="rows C / P")
    def counts(self, obj: ReconciliationJob) -> str:
        def n(value: int | None) -> str:
            return "—" if value is None else f"{value:,}"

        return f"{n(obj.cassandra_row_count)} / {n(obj.postgres_row_count)}"

    @admin.display(description="mismatches", ordering="mismatch_count")
    def mismatches_link(self, obj: ReconciliationJob) -> SafeString | str:
        if not obj.mismatch_count:
            return "0"
        return link(mismatch_list_url(job=obj.job_id), f"{obj.mismatch_count:,}")

    @admin.display(description="Cassandra read rate", ordering="source_rows_per_second")
    def read_rate(self, obj: ReconciliationJob) -> str:
        if obj.source_rows_per_second is None:
            return "—"
        text = f"{obj.source_rows_per_second:,.0f} rows/s"
        mapping = TableMapping.objects.filter(name=obj.table_name).first()
        caps = [
            f"{scope} cap {rate:,} rows/s"
            for scope, rate in (
                ("global", settings.reconciliation.source_max_rows_per_second),
                ("table", mapping.source_max_rows_per_second if mapping else None),
            )
            if rate
        ]
        return f"{text} (caps now: {', '.join(caps)})" if caps else text

    @admin.display(description="the run: where it is, what it did")
    def repair_policy_run(self, obj: ReconciliationJob) -> str:
        return describe_run(obj.repair_run, obj.repair_summary)

    @admin.display(description="differences acted on")
    def repair_actions(self, obj: ReconciliationJob) -> SafeString | str:
        actions = list(obj.repairs.order_by("created_at", "pk")[:REPAIR_ACTIONS_SHOWN])
        if not actions:
            return "-"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (a.primary_key_value, a.mismatch_type, a.get_result_display(), a.reason or a.detail)
                for a in actions
            ),
        )
        more = obj.repairs.count() - len(actions)
        tail = format_html("<p>and {} more</p>", more) if more > 0 else ""
        return format_html(
            "<table><tr><th>key</th><th>type</th><th>result</th><th>why</th></tr>{}</table>{}",
            rows,
            tail,
        )

    @admin.display(description="re-check rule")
    def recheck(self, obj: ReconciliationJob) -> str:
        if not obj.recheck_rule:
            return "-"
        text = obj.get_recheck_rule_display()
        if obj.lag_budget_seconds is not None:
            text += f" (CDC lag budget {obj.lag_budget_seconds:g} s)"
        return text

    @admin.display(description="drift", ordering="drift_percentage")
    def drift(self, obj: ReconciliationJob) -> SafeString:
        if obj.is_inconclusive:
            return inconclusive_badge()
        warning = getattr(obj, "warning_at", None)
        critical = getattr(obj, "critical_at", None)
        if warning is None or critical is None:
            thresholds = thresholds_for_table(obj.table_name)
            warning, critical = thresholds.warning, thresholds.critical
        return drift_badge(obj.drift_percentage, warning, critical)

    @admin.display(description="latest full check")
    def full_check_verdict(self, obj: ReconciliationJob) -> SafeString | str:
        """The table's latest conclusive CHECKSUM, beside this (possibly newer) estimate."""
        full = (
            ReconciliationJob.objects.filter(
                table_name=obj.table_name, validation_strategy__in=FULL_CHECK_STRATEGIES
            )
            .conclusive()
            .order_by("-started_at")
            .first()
        )
        if full is None:
            return "none yet: no CHECKSUM of this table has examined any key"
        if full.pk == obj.pk:
            return "this job"
        thresholds = thresholds_for_table(obj.table_name)
        return format_html(
            '{} <a href="{}">{} {}</a>{}',
            drift_badge(full.drift_percentage, thresholds.warning, thresholds.critical),
            reverse("admin:reconciliation_reconciliationjob_change", args=[full.pk]),
            full.validation_strategy,
            f"{full.started_at:%Y-%m-%d %H:%M}",
            " (older: this job is a newer estimate)" if full.started_at < obj.started_at else "",
        )

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
        # What this job found (its findings), each difference as it stands now.
        found = Mismatch.objects.filter(Q(job=obj) | Q(findings__job=obj)).distinct()
        mismatches = list(
            found.select_related("resolved_by").order_by("detected_at", "mismatch_id")[
                :MISMATCH_PREVIEW_LIMIT
            ]
        )
        if not mismatches:
            return "None stored (ROW_COUNT jobs and clean runs store no row mismatches)."
        total = found.count()
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
