"""The mismatch admin: the operator's queue.

The list, the side-by-side diff and the timeline.  The actions (resolution with notes,
re-check, repair from source) are ``admin.queue``'s: every one returns to the filtered list
the operator came from (Django's ``_changelist_filters``) and offers the next pending
mismatch of that list.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin import helpers
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from reconciliation.admin.common import (
    JobFilter,
    ReadOnlyChangeFormMixin,
    TableNameFilter,
    change_url_in_list,
    changelist_filters,
    filtered_changelist_url,
    job_url,
    link,
)
from reconciliation.admin.forensics import forensics_for_list
from reconciliation.admin.queue import QueueActions
from reconciliation.admin.views import (
    badge,
    diff_rows,
)
from reconciliation.choices import MismatchType, ResolutionStatus
from reconciliation.models import (
    Mismatch,
    TableMapping,
)

DIFFERING_COLUMNS_SHOWN = 3


def differing_columns(mismatch: Mismatch, excluded_columns: list[str] | None) -> list[str]:
    """The compared columns whose captured values differ (the diff page's rule)."""
    mapping = TableMapping(name=mismatch.table_name, excluded_columns=excluded_columns or [])
    return [row.column for row in diff_rows(mismatch, mapping) if row.differs]


@admin.register(Mismatch)
class MismatchAdmin(ReadOnlyChangeFormMixin, QueueActions):
    list_display = [
        "table_name",
        "key",
        "type_badge",
        "status_badge",
        "differs",
        "seen",
        "last_seen",
        "job_link",
        "resolved_by",
    ]
    list_display_links = ["key"]
    list_filter = [
        TableNameFilter,
        "mismatch_type",
        "resolution_status",
        JobFilter,
        "detected_at",
        ("last_seen_at", admin.DateFieldListFilter),
    ]
    search_fields = ["primary_key_value"]
    search_help_text = "Search by primary key (part of the key text or JSON array)."
    list_select_related = ["job", "resolved_by"]
    date_hierarchy = "detected_at"
    ordering = ["-detected_at", "mismatch_id"]
    list_per_page = 50
    show_full_result_count = False  # COUNT(*) of a big mismatch table on every page is slow
    actions = ["mark_resolved", "mark_ignored", "recheck_now", "reopen", "repair_from_source"]
    read_only_message = "Mismatches are read-only here: use Resolve, Ignore, Reopen or Repair."

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The list, with the forensics of the chosen job, else of the chosen table."""
        context = dict(extra_context or {})
        context["forensics"] = forensics_for_list(
            request.GET.get(JobFilter.parameter_name),
            request.GET.get(TableNameFilter.parameter_name),
        )
        return super().changelist_view(request, context)

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
                    "seen",
                    "last_seen_at",
                    "last_job_link",
                    "source_write_time",
                    "source_ttl",
                ]
            },
        ),
        (
            "Resolution",
            {
                "fields": [
                    "status_badge",
                    "recheck_after",
                    "resolution_notes",
                    "resolved_by",
                    "resolved_at",
                    "erased_at",
                ]
            },
        ),
        ("History", {"fields": ["timeline"]}),
    ]

    # Read-only (ReadOnlyChangeFormMixin): nothing captured can be edited, added or deleted.

    def get_queryset(self, request: HttpRequest) -> QuerySet[Mismatch]:
        excluded = TableMapping.objects.filter(name=OuterRef("table_name")).values(
            "excluded_columns"
        )[:1]
        return super().get_queryset(request).annotate(mapping_excluded=Subquery(excluded))

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

    @admin.display(description="timeline")
    def timeline(self, obj: Mismatch) -> SafeString:
        """Every status change, oldest first (``GET …/history`` serves the same events)."""
        events = obj.events.order_by("at", "pk")
        if not events:
            return format_html("<em>{}</em>", "No status change recorded.")
        return format_html(
            '<ol class="mismatch-timeline">{}</ol>',
            format_html_join(
                "",
                "<li><time>{}</time> <strong>{} → {}</strong> by {} ({}): {}</li>",
                (
                    (
                        f"{e.at:%Y-%m-%d %H:%M:%S} UTC",
                        e.from_status or "new",
                        e.to_status,
                        e.actor,
                        e.get_actor_kind_display(),
                        e.reason,
                    )
                    for e in events
                ),
            ),
        )

    @admin.display(description="source row's TTL")
    def source_ttl(self, obj: Mismatch) -> str:
        if obj.source_ttl_seconds is None:
            return "none (does not expire)" if obj.source_write_time else "-"
        return f"{obj.source_ttl_seconds:,} s left when last read"

    @admin.display(description="differs")
    def differs(self, obj: Mismatch) -> SafeString | str:
        if obj.mismatch_type != MismatchType.DATA_MISMATCH:
            return "whole row"
        columns = differing_columns(obj, getattr(obj, "mapping_excluded", None))
        if not columns:
            return "—"
        shown = ", ".join(columns[:DIFFERING_COLUMNS_SHOWN])
        more = len(columns) - DIFFERING_COLUMNS_SHOWN
        return format_html(
            '<span class="cdc-differs" title="{}">{}{}</span>',
            ", ".join(columns),
            shown,
            f" +{more}" if more > 0 else "",
        )

    @admin.display(description="last seen", ordering="last_seen_at")
    def last_seen(self, obj: Mismatch) -> SafeString:
        return format_html(
            '<span style="white-space:nowrap">{}</span>', f"{obj.last_seen_at:%Y-%m-%d %H:%M}"
        )

    @admin.display(description="seen", ordering="times_seen")
    def seen(self, obj: Mismatch) -> SafeString:
        """How many runs found it, and the "reappeared after resolution" marker."""
        marker = (
            format_html(
                ' <span class="cdc-reappeared" title="resolved, then found again on {} UTC" '
                'style="color:#c62828;font-weight:bold">reappeared</span>',
                f"{obj.reappeared_at:%Y-%m-%d %H:%M}",
            )
            if obj.reappeared_at
            else ""
        )
        return format_html("{}×{}", obj.times_seen, marker)

    @admin.display(description="latest job")
    def last_job_link(self, obj: Mismatch) -> SafeString | str:
        job = obj.last_job
        if job is None:
            return "—"
        return link(
            job_url(job.job_id), f"{job.validation_strategy} {job.started_at:%Y-%m-%d %H:%M}"
        )

    @admin.display(description="job", ordering="job__started_at")
    def job_link(self, obj: Mismatch) -> SafeString:
        job = obj.job
        return format_html(
            '<a href="{}" style="white-space:nowrap" title="{}">{} {}</a>',
            job_url(job.job_id),
            f"{job.validation_strategy} job of {job.started_at:%Y-%m-%d %H:%M} UTC",
            job.validation_strategy,
            f"{job.started_at:%m-%d %H:%M}",
        )

    def read_only_context(self, request: HttpRequest, obj: Mismatch) -> dict[str, Any]:
        mapping = TableMapping.objects.filter(name=obj.table_name).first()
        rows = diff_rows(obj, mapping)
        filters = changelist_filters(request)
        following = self.next_pending(request, filters, exclude=[obj.pk])
        return dict(
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
            changelist_filters=filters,
            filtered_changelist_url=filtered_changelist_url(self, filters),
            next_pending_url=change_url_in_list(self, following.pk, filters) if following else "",
            action_checkbox_name=helpers.ACTION_CHECKBOX_NAME,
        )
