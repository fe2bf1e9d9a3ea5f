"""The drift overview, the admin's home page for tables: one line per table (registered or
in the settings) with its latest job, its verdict (the latest conclusive full check, else the
latest conclusive job) and newer estimates, its open differences by type, a server-side SVG
trend chart of drift over the last ``TREND_DAYS`` days (no JS) and when beat next runs it.

``TableMapping``'s admin serves it (``reconciliation.admin.mappings``).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
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
from reconciliation.admin.views import (
    LEVEL_COLOURS,
    badge,
    drift_badge,
    job_status_badge,
    level_for,
    thresholds_for,
)
from reconciliation.choices import AlertLevel, JobStatus, MismatchType, ResolutionStatus
from reconciliation.jobs.schedule import SCHEDULE_TASK
from reconciliation.models import FULL_CHECK_STRATEGIES, Mismatch, ReconciliationJob, TableMapping

TREND_DAYS = 7


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
