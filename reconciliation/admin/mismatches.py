"""The mismatch admin: the side-by-side diff, resolution with notes, repair from source."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from reconciliation.admin.common import (
    JobFilter,
    NotesForm,
    TableNameFilter,
    all_fields,
    already_closed_message,
    job_url,
    link,
)
from reconciliation.admin_views import (
    badge,
    diff_rows,
    summarise,
)
from reconciliation.choices import ResolutionStatus
from reconciliation.models import (
    CLOSED_STATUSES,
    AlreadyResolved,
    Mismatch,
    TableMapping,
)
from reconciliation.repair import RepairFailed, repair_mismatch


@admin.register(Mismatch)
class MismatchAdmin(admin.ModelAdmin):
    list_display = [
        "table_name",
        "key",
        "type_badge",
        "status_badge",
        "seen",
        "last_seen_at",
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
                    "seen",
                    "last_seen_at",
                    "last_job_link",
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
        return all_fields(self.fieldsets)

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
        return link(
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
                refused.append(already_closed_message(exc.mismatch))
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
