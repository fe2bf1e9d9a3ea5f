"""What the admin pages show beyond plain model fields: badges (statuses, types, drift by the
table's thresholds), the side-by-side row diff of a mismatch, and ``summarise`` for messages
about many rows.

Plain functions over models; the modules of ``reconciliation.admin`` wire them into
ModelAdmins.  The drift overview page is ``reconciliation.admin.overview``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.utils.html import format_html
from django.utils.safestring import SafeString

from reconciliation.choices import (
    AlertLevel,
    JobStatus,
    MismatchType,
    ResolutionStatus,
    SegmentStatus,
)
from reconciliation.engine.schema import is_excluded
from reconciliation.models import (
    Mismatch,
    ReconciliationJob,
    TableMapping,
    Thresholds,
)
from reconciliation.repair.source_changes import canonical_equal

COLOURS: dict[str, str] = {
    # mismatch types
    MismatchType.MISSING_IN_POSTGRES: "#c62828",
    MismatchType.MISSING_IN_CASSANDRA: "#6a1b9a",
    MismatchType.DATA_MISMATCH: "#ef6c00",
    # resolution statuses
    ResolutionStatus.PENDING: "#f9a825",
    ResolutionStatus.MANUAL_RESOLVED: "#2e7d32",
    ResolutionStatus.AUTO_RESOLVED: "#00695c",
    ResolutionStatus.IGNORED: "#757575",
    ResolutionStatus.IN_FLIGHT: "#0288d1",  # within the CDC lag budget: not drift (yet)
    # job statuses
    JobStatus.RUNNING: "#1565c0",
    JobStatus.COMPLETED: "#2e7d32",
    JobStatus.FAILED: "#c62828",
    # segment statuses (PENDING and RUNNING share the colours above)
    SegmentStatus.QUEUED: "#0277bd",
    SegmentStatus.DONE: "#2e7d32",
    # alert levels
    AlertLevel.NONE: "#2e7d32",
    AlertLevel.WARNING: "#ef6c00",
    AlertLevel.CRITICAL: "#c62828",
}
LEVEL_COLOURS: dict[str, str] = {
    AlertLevel.NONE: "#2e7d32",
    AlertLevel.WARNING: "#ef6c00",
    AlertLevel.CRITICAL: "#c62828",
}


def badge(value: str, label: str | None = None) -> SafeString:
    """A coloured pill for a status or type value (its label as text, its code as a class)."""
    return format_html(
        '<span class="cdc-badge cdc-{}" style="color:#fff;background:{};padding:1px 7px;'
        'border-radius:9px;font-size:11px;white-space:nowrap">{}</span>',
        value.lower(),
        COLOURS.get(value, "#546e7a"),
        label or value,
    )


def drift_badge(drift: float | None, warning: float, critical: float) -> SafeString:
    """The drift percentage coloured by the table's thresholds (green, orange, red)."""
    if drift is None:
        return format_html('<span class="cdc-drift cdc-drift-none">{}</span>', "—")
    level = level_for(drift, warning, critical)
    return format_html(
        '<span class="cdc-drift cdc-drift-{}" style="color:{};font-weight:bold" '
        'title="warning above {}%, critical above {}%">{}%</span>',
        level.lower(),
        LEVEL_COLOURS[level],
        _number(warning),
        _number(critical),
        f"{drift:.2f}",
    )


def level_for(drift: float | None, warning: float, critical: float) -> str:
    return Thresholds(warning, critical).alert_level(drift)


def inconclusive_badge() -> SafeString:
    """A completed run that examined nothing: grey, never green."""
    return format_html(
        '<span class="cdc-badge cdc-inconclusive" style="color:#fff;background:#757575;'
        'padding:1px 7px;border-radius:9px;font-size:11px;white-space:nowrap" '
        'title="completed, but examined no key (an empty window or table): no verdict">{}</span>',
        "inconclusive",
    )


def job_status_badge(job: ReconciliationJob) -> SafeString:
    """The job's status, or "inconclusive" for a completed run that examined nothing."""
    if job.is_inconclusive:
        return inconclusive_badge()
    return badge(job.status, job.get_status_display())


def _number(value: float) -> str:
    return f"{value:g}"


def thresholds_for(table_name: str, mappings: dict[str, TableMapping]) -> tuple[float, float]:
    mapping = mappings.get(table_name)  # unregistered: the settings' defaults, no query
    thresholds = Thresholds.effective() if mapping is None else mapping.thresholds
    return thresholds.warning, thresholds.critical


# --------------------------------------------------------------------------------------
# The mismatch's two rows, side by side


@dataclass(frozen=True)
class DiffRow:
    column: str
    cassandra: str
    postgres: str
    cassandra_null: bool
    postgres_null: bool
    is_key: bool
    excluded: bool
    differs: bool


def display_value(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return value if value != "" else '""'
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def diff_rows(mismatch: Mismatch, mapping: TableMapping | None) -> list[DiffRow]:
    """One row per column of either captured row: key columns first, then by name."""
    cassandra = mismatch.cassandra_data if isinstance(mismatch.cassandra_data, dict) else None
    postgres = mismatch.postgres_data if isinstance(mismatch.postgres_data, dict) else None
    keys = mapping.key_columns if mapping else []
    excluded = list(mapping.excluded_columns or []) if mapping else []
    names = set(cassandra or {}) | set(postgres or {})
    ordered = [k for k in keys if k in names] + sorted(names - set(keys))
    rows = []
    for name in ordered:
        c_value = cassandra.get(name) if cassandra is not None else None
        p_value = postgres.get(name) if postgres is not None else None
        both = cassandra is not None and postgres is not None
        one_sided = both and ((name in (cassandra or {})) != (name in (postgres or {})))
        is_excluded_column = is_excluded(name, excluded) or one_sided
        rows.append(
            DiffRow(
                column=name,
                cassandra=display_value(c_value) if cassandra is not None else "",
                postgres=display_value(p_value) if postgres is not None else "",
                cassandra_null=c_value is None,
                postgres_null=p_value is None,
                is_key=name in keys,
                excluded=is_excluded_column,
                differs=both and not is_excluded_column and not canonical_equal(c_value, p_value),
            )
        )
    return rows


def summarise(items: Iterable[str], limit: int = 8) -> str:
    """'a, b, c and 4 more' for messages about many rows."""
    items = list(items)
    shown = ", ".join(items[:limit])
    return f"{shown} and {len(items) - limit} more" if len(items) > limit else shown
