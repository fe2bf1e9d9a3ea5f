"""What the admin pages show beyond plain model fields: the side-by-side row diff of a
mismatch, the drift overview with its server-side SVG trend charts, badges.

Plain functions over models; ``reconciliation/admin.py`` wires them into ModelAdmins.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django_celery_beat.models import PeriodicTask

from cdcrecon.conf import settings
from reconciliation.choices import (
    AlertLevel,
    JobStatus,
    MismatchType,
    ResolutionStatus,
    SegmentStatus,
)
from reconciliation.engine.schema import is_excluded
from reconciliation.jobs.schedule import SCHEDULE_TASK
from reconciliation.models import (
    FULL_CHECK_STRATEGIES,
    Mismatch,
    ReconciliationJob,
    TableMapping,
    Thresholds,
)
from reconciliation.repair.source_changes import canonical_equal

TREND_DAYS = 7

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


# --------------------------------------------------------------------------------------
# The overview: one line per table


@dataclass
class TableOverview:
    name: str
    mapping: TableMapping | None
    warning: float
    critical: float
    latest_job: ReconciliationJob | None = None
    # The verdict: the latest conclusive full check (CHECKSUM), else the latest conclusive
    # job of any strategy; ``estimates``: newer conclusive jobs of other strategies.
    latest_drift_job: ReconciliationJob | None = None
    estimates: list[ReconciliationJob] = field(default_factory=list)
    trend: list[tuple[dt.datetime, float]] = field(default_factory=list)
    open_by_type: dict[str, int] = field(default_factory=dict)
    next_run: str = "not scheduled"
    next_run_at: dt.datetime | None = None

    @property
    def open_total(self) -> int:
        return sum(self.open_by_type.values())

    @property
    def drift_badge(self) -> SafeString:
        drift = self.latest_drift_job.drift_percentage if self.latest_drift_job else None
        return drift_badge(drift, self.warning, self.critical)

    @property
    def is_full_check(self) -> bool:
        job = self.latest_drift_job
        return job is not None and job.validation_strategy in FULL_CHECK_STRATEGIES

    @property
    def estimate_lines(self) -> list[tuple[ReconciliationJob, SafeString, str]]:
        """(job, drift badge, "95% CI a–b%" or "") of each newer estimate."""
        return [
            (
                job,
                drift_badge(job.drift_percentage, self.warning, self.critical),
                f"95% CI {job.drift_ci_low:.2f}–{job.drift_ci_high:.2f}%"
                if job.drift_ci_low is not None and job.drift_ci_high is not None
                else "",
            )
            for job in self.estimates
        ]

    @property
    def latest_job_badge(self) -> SafeString | str:
        job = self.latest_job
        return job_status_badge(job) if job else ""

    @property
    def trend_svg(self) -> SafeString:
        return trend_svg(self.trend, self.warning, self.critical)

    @property
    def open_links(self) -> list[tuple[str, str, int, SafeString]]:
        url = reverse("admin:reconciliation_mismatch_changelist")
        return [
            (
                f"{url}?table={self.name}&mismatch_type__exact={kind}"
                f"&resolution_status__exact={ResolutionStatus.PENDING}",
                label,
                self.open_by_type.get(kind, 0),
                badge(kind, label),
            )
            for kind, label in MismatchType.choices
        ]


def trend_svg(
    points: Sequence[tuple[dt.datetime, float]],
    warning: float,
    critical: float,
    *,
    now: dt.datetime | None = None,
    width: int = 240,
    height: int = 56,
) -> SafeString:
    """A small line chart of drift over the last TREND_DAYS days, as inline SVG (no JS).

    The dashed lines are the table's warning (orange) and critical (red) thresholds; each
    run is a dot coloured by the level its drift reached.
    """
    now = now or timezone.now()
    start = now - dt.timedelta(days=TREND_DAYS)
    pad = 4
    top = max([critical * 1.15, 1.0, *(d for _, d in points)])

    def x(when: dt.datetime) -> str:
        span = (now - start).total_seconds()
        share = min(1.0, max(0.0, (when - start).total_seconds() / span))
        return f"{pad + share * (width - 2 * pad):.1f}"

    def y(drift: float) -> str:
        return f"{height - pad - (min(drift, top) / top) * (height - 2 * pad):.1f}"

    latest = f"latest {points[-1][1]:.2f}%" if points else "no completed runs"
    title = f"Drift over the last {TREND_DAYS} days: {len(points)} runs, {latest}"
    thresholds = format_html_join(
        "",
        '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="{}" stroke-dasharray="3 3" '
        'stroke-width="1" class="cdc-threshold-{}"/>',
        (
            (pad, width - pad, y(level), y(level), colour, name)
            for level, colour, name in (
                (warning, LEVEL_COLOURS[AlertLevel.WARNING], "warning"),
                (critical, LEVEL_COLOURS[AlertLevel.CRITICAL], "critical"),
            )
            if level <= top
        ),
    )
    if points:
        line = format_html(
            '<polyline fill="none" stroke="#1565c0" stroke-width="1.5" points="{}"/>',
            " ".join(f"{x(when)},{y(drift)}" for when, drift in points),
        )
        dots = format_html_join(
            "",
            '<circle cx="{}" cy="{}" r="2.2" fill="{}"><title>{} UTC: {}%</title></circle>',
            (
                (
                    x(when),
                    y(drift),
                    LEVEL_COLOURS[level_for(drift, warning, critical)],
                    f"{when:%Y-%m-%d %H:%M}",
                    f"{drift:.2f}",
                )
                for when, drift in points
            ),
        )
    else:
        line = format_html(
            '<text x="{}" y="{}" font-size="10" fill="#888" text-anchor="middle">{}</text>',
            width // 2,
            height // 2 + 3,
            f"no runs in {TREND_DAYS} days",
        )
        dots = mark_safe("")  # noqa: S308 - an empty string
    return format_html(
        '<svg class="cdc-trend" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        'viewBox="0 0 {w} {h}" role="img" aria-label="{t}"><title>{t}</title>'
        '<rect x="0" y="0" width="{w}" height="{h}" fill="none" stroke="#ccc"/>'
        "{th}{line}{dots}</svg>",
        w=width,
        h=height,
        t=title,
        th=thresholds,
        line=line,
        dots=dots,
    )


def next_scheduled_run(now: dt.datetime | None = None) -> tuple[dt.datetime | None, str]:
    """When beat next enqueues the scheduled reconciliation, from django-celery-beat."""
    now = now or timezone.now()
    task = (
        PeriodicTask.objects.filter(task=SCHEDULE_TASK)
        .select_related("interval", "crontab", "solar", "clocked")
        .order_by("-enabled", "id")
        .first()
    )
    if task is None or not task.enabled:
        return None, "not scheduled"
    try:
        last = task.last_run_at or task.start_time or task.date_changed or now
        remaining = task.schedule.remaining_estimate(last)
        when = max(now, now + remaining)
        if task.start_time and task.start_time > when:
            when = task.start_time
    except Exception:  # an odd schedule must not break the page
        return None, f"scheduled ({task})"
    return when, f"{when:%Y-%m-%d %H:%M} UTC"


def table_overviews(now: dt.datetime | None = None) -> list[TableOverview]:
    now = now or timezone.now()
    mappings = {m.name: m for m in TableMapping.objects.all()}
    names = sorted(set(mappings) | set(settings.reconciliation.tables))
    since = now - dt.timedelta(days=TREND_DAYS)
    next_at, next_text = next_scheduled_run(now)

    trends: dict[str, list[tuple[dt.datetime, float]]] = defaultdict(list)
    for table, started, drift in (
        ReconciliationJob.objects.filter(
            table_name__in=names,
            status=JobStatus.COMPLETED,
            started_at__gte=since,
            drift_percentage__isnull=False,
        )
        .order_by("started_at")
        .values_list("table_name", "started_at", "drift_percentage")
    ):
        if drift is not None:
            trends[table].append((started, drift))

    open_counts: dict[str, dict[str, int]] = defaultdict(dict)
    for row in (
        Mismatch.objects.filter(table_name__in=names, resolution_status=ResolutionStatus.PENDING)
        .values("table_name", "mismatch_type")
        .annotate(n=Count("mismatch_id"))
        .order_by()
    ):
        open_counts[row["table_name"]][row["mismatch_type"]] = row["n"]

    verdicts: dict[str, list[ReconciliationJob]] = defaultdict(list)
    for job in ReconciliationJob.objects.filter(table_name__in=names).latest_conclusive():
        verdicts[job.table_name].append(job)

    overviews = []
    for name in names:
        warning, critical = thresholds_for(name, mappings)
        jobs = ReconciliationJob.objects.filter(table_name=name).order_by("-started_at")
        latest = sorted(verdicts.get(name, []), key=lambda j: j.started_at, reverse=True)
        full = next((j for j in latest if j.validation_strategy in FULL_CHECK_STRATEGIES), None)
        verdict = full or (latest[0] if latest else None)
        overview = TableOverview(
            name=name,
            mapping=mappings.get(name),
            warning=warning,
            critical=critical,
            latest_job=jobs.first(),
            latest_drift_job=verdict,
            estimates=[
                j
                for j in latest
                if j is not verdict and (verdict is None or j.started_at > verdict.started_at)
            ],
            trend=trends.get(name, []),
            open_by_type=open_counts.get(name, {}),
        )
        mapping = mappings.get(name)
        if mapping is not None and not mapping.enabled:
            overview.next_run = "not scheduled (table disabled)"
        elif next_at is not None:
            overview.next_run, overview.next_run_at = next_text, next_at
        elif next_text != "not scheduled":
            overview.next_run = next_text
        overviews.append(overview)
    return overviews


def overview_view(request: HttpRequest, extra_context: dict[str, Any]) -> TemplateResponse:
    now = timezone.now()
    tables = table_overviews(now)
    running = ReconciliationJob.objects.filter(status=JobStatus.RUNNING).count()
    failed_day = ReconciliationJob.objects.filter(
        status=JobStatus.FAILED, started_at__gte=now - dt.timedelta(days=1)
    ).count()
    context = {
        **extra_context,
        "title": "Drift overview",
        "tables": tables,
        "trend_days": TREND_DAYS,
        "running_jobs": running,
        "failed_jobs_24h": failed_day,
        "open_mismatches": sum(t.open_total for t in tables),
        "now": now,
        "schedule_enabled": settings.reconciliation.enabled,
        "interval_minutes": settings.reconciliation.interval_minutes,
    }
    return TemplateResponse(request, "admin/reconciliation/overview.html", context)


def summarise(items: Iterable[str], limit: int = 8) -> str:
    """'a, b, c and 4 more' for messages about many rows."""
    items = list(items)
    shown = ", ".join(items[:limit])
    return f"{shown} and {len(items) - limit} more" if len(items) > limit else shown
