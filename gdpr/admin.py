"""The audit log in the admin: searchable and filterable, never editable by anyone."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from gdpr.models import AuditLogEntry, StoreStatus

STATUS_COLOURS: dict[str, str] = {
    StoreStatus.SUCCESS: "#2e7d32",
    StoreStatus.NOT_FOUND: "#546e7a",
    StoreStatus.FAILED: "#c62828",
    StoreStatus.PENDING: "#ef6c00",
    StoreStatus.SKIPPED: "#757575",
}


def status_badge(status: str) -> SafeString:
    return format_html(
        '<span style="color:#fff;background:{};padding:1px 6px;border-radius:3px">{}</span>',
        STATUS_COLOURS.get(status, "#757575"),
        StoreStatus(status).label if status in StoreStatus.values else status,
    )


class StoreStatusFilter(admin.SimpleListFilter):
    """Entries where either store has the chosen status (e.g. every FAILED erasure)."""

    title = "status (either store)"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(StoreStatus.choices)

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        if self.value():
            return queryset.filter(cassandra_status=self.value()) | queryset.filter(
                postgres_status=self.value()
            )
        return queryset


def _shown(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return value if value else '""'
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def before_after_table(details: dict[str, Any]) -> SafeString | str:
    """A repair's target row before and after, column by column, changed columns marked.

    "—" when the entry has no rows (an erasure, or rows redacted by a later erasure).
    """
    if not isinstance(details, dict) or ("before" not in details and "after" not in details):
        return "—"
    before, after = details.get("before"), details.get("after")
    old = before if isinstance(before, dict) else {}
    new = after if isinstance(after, dict) else {}
    columns = sorted(set(old) | set(new))
    if not columns:
        return "No row before and none after."

    def cell(row: Any, column: str) -> str:
        if not isinstance(row, dict):
            return "(no row)"
        return _shown(row[column]) if column in row else "(no column)"

    rows = []
    for column in columns:
        was, now = cell(before, column), cell(after, column)
        changed = was != now
        rows.append(("cdc-changed" if changed else "", "≠ " if changed else "", column, was, now))
    changed_count = sum(1 for row in rows if row[0])
    summary = (
        "The row was created."
        if before is None
        else "The row was deleted."
        if after is None
        else f"{changed_count} of {len(columns)} column(s) changed."
    )
    return format_html(
        '<p class="cdc-before-after-summary">{}</p>'
        '<table class="cdc-before-after"><thead><tr><th>Column</th><th>Before</th>'
        "<th>After</th></tr></thead><tbody>{}</tbody></table>"
        "<style>.cdc-before-after td{{font-family:ui-monospace,monospace;vertical-align:top;"
        "white-space:pre-wrap;word-break:break-word}}"
        ".cdc-before-after tr.cdc-changed td{{background:rgba(255,193,7,.28);font-weight:bold}}"
        "</style>",
        summary,
        format_html_join(
            "",
            '<tr class="{}" data-column="{}"><td>{}{}</td><td>{}</td><td>{}</td></tr>',
            ((css, column, mark, column, was, now) for css, mark, column, was, now in rows),
        ),
    )


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(admin.ModelAdmin):
    list_display = [
        "requested_at",
        "action",
        "requester",
        "keyspace",
        "table",
        "primary_key",
        "cassandra",
        "postgres",
        "completed_at",
    ]
    list_filter = [
        StoreStatusFilter,
        "action",
        "table",
        "keyspace",
        "cassandra_status",
        "postgres_status",
        "requester",
    ]
    search_fields = ["primary_key", "requester", "reason"]
    date_hierarchy = "requested_at"
    ordering = ["-requested_at", "-id"]
    readonly_fields = [
        *(field.name for field in AuditLogEntry._meta.fields if field.name != "details"),
        "before_after",
        "details",
    ]
    list_per_page = 100

    @admin.display(description="before / after")
    def before_after(self, entry: AuditLogEntry) -> SafeString | str:
        return before_after_table(entry.details)

    @admin.display(description="Cassandra", ordering="cassandra_status")
    def cassandra(self, entry: AuditLogEntry) -> SafeString:
        return status_badge(entry.cassandra_status)

    @admin.display(description="PostgreSQL", ordering="postgres_status")
    def postgres(self, entry: AuditLogEntry) -> SafeString:
        return status_badge(entry.postgres_status)

    # Append-only (design §4): not even a superuser may add, edit or delete an entry here;
    # erasures are made through the API, which writes the entries itself.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditLogEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditLogEntry | None = None) -> bool:
        return False
