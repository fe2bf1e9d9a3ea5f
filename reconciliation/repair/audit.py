"""A repair attempt's audit entry (``AuditLogEntry``, action REPAIR): how far the attempt
got (``Progress``, filled in by ``manual`` as it reads the source and writes the target),
written when the attempt starts and completed when it ends, also when it fails, with the
target row before and after and each column the repair changed (``column_changes``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from gdpr.models import AuditAction, AuditLogEntry, StoreStatus
from reconciliation.models import Mismatch, TableMapping
from reconciliation.repair.target_rows import Row


@dataclass
class Progress:
    """How far an attempt got, for the audit entry (also written when it fails)."""

    started_at: dt.datetime = field(default_factory=timezone.now)
    cassandra_status: str = StoreStatus.PENDING
    cassandra_error: str = ""
    postgres_status: str = StoreStatus.SKIPPED
    postgres_error: str = ""
    before: Row | None = None
    after: Row | None = None
    action: str = ""
    changed_columns: list[str] | None = None
    note: str = ""


def audit_attempt(
    mapping: TableMapping,
    mismatch: Mismatch,
    user: Any,
    progress: Progress,
    context: Mapping[str, Any] | None,
    entry: AuditLogEntry | None,
) -> AuditLogEntry:
    """Write the attempt's audit entry (``entry`` None: the attempt is starting) or
    complete it."""
    details: dict[str, Any] = {
        "before": progress.before,
        "after": progress.after,
        "columns": column_changes(progress.before, progress.after),
        "mismatch_id": str(mismatch.mismatch_id),
        "mismatch_type": mismatch.mismatch_type,
        "target": f"{mapping.postgres_schema}.{mapping.postgres_table}",
        "action": progress.action or ("started" if entry is None else "failed"),
        "source_changed_columns": progress.changed_columns,
        **(context or {}),
    }
    fields: dict[str, Any] = {
        "completed_at": None if entry is None else timezone.now(),
        "cassandra_status": progress.cassandra_status,
        "cassandra_error": progress.cassandra_error,
        "postgres_status": progress.postgres_status if entry is not None else StoreStatus.PENDING,
        "postgres_error": progress.postgres_error,
        "details": details,
    }
    if entry is None:
        return AuditLogEntry.objects.create(
            action=AuditAction.REPAIR,
            requester=_username(user),
            reason=f"repair of mismatch {mismatch.mismatch_id}",
            keyspace=mapping.cassandra_keyspace,
            table=mapping.cassandra_table,
            primary_key=mismatch.primary_key_value,
            requested_at=progress.started_at,
            **fields,
        )
    AuditLogEntry.objects.filter(pk=entry.pk).update(**fields)
    for name, value in fields.items():
        setattr(entry, name, value)
    return entry


def column_changes(before: Row | None, after: Row | None) -> dict[str, dict[str, Any]]:
    """The target row's columns a repair changed, each ``{"before": …, "after": …}`` (a
    column absent on one side is None there)."""
    old, new = before or {}, after or {}
    return {
        column: {"before": old.get(column), "after": new.get(column)}
        for column in [*old, *(c for c in new if c not in old)]
        if old.get(column) != new.get(column)
    }


def _username(user: Any) -> str:
    getter = getattr(user, "get_username", None)
    return str(getter()) if callable(getter) and getter() else "unknown"
