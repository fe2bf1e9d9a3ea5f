"""The audit log in the admin: searchable and filterable, never editable by anyone."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
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
    readonly_fields = [field.name for field in AuditLogEntry._meta.fields]
    list_per_page = 100

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
