"""The forensics panel of the admin's job page and mismatch list: the findings in words and
a write-time histogram drawn as inline SVG (no JavaScript), from ``reconciliation.forensics.report``."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from reconciliation.forensics.report import JobStillRunning, job_forensics, table_forensics
from reconciliation.models import ReconciliationJob, TableMapping
from reconciliation.vocabulary import DATA_MISMATCH, MISSING_IN_CASSANDRA, MISSING_IN_POSTGRES

TYPE_COLOURS = {
    MISSING_IN_POSTGRES: "#c62828",
    MISSING_IN_CASSANDRA: "#6a1b9a",
    DATA_MISMATCH: "#ef6c00",
}


def histogram_svg(report: dict[str, Any], *, width: int = 480, height: int = 90) -> SafeString:
    """Differences per write-time bucket, stacked by mismatch type (those without a write
    time, e.g. rows only in PostgreSQL, are not drawn: the legend counts them)."""
    counts: dict[str, dict[str, int]] = {}
    for group in report["by_type_and_time"]:
        if group["bucket_start"] is not None:
            counts.setdefault(group["bucket_start"], {})[group["mismatch_type"]] = group["count"]
    undated = sum(g["count"] for g in report["by_type_and_time"] if g["bucket_start"] is None)
    title = f"Differences by source write time, per {report['bucket']} (UTC)" + (
        f"; {undated} without a write time" if undated else ""
    )
    if not counts:
        body = format_html(
            '<text x="{}" y="{}" font-size="11" fill="#888" text-anchor="middle">{}</text>',
            width // 2,
            height // 2,
            "no write times to draw",
        )
    else:
        starts = sorted(counts)
        first = dt.datetime.fromisoformat(starts[0])
        last = dt.datetime.fromisoformat(starts[-1])
        step = {"minute": 60, "hour": 3600, "day": 86400}[report["bucket"]]
        slots = int((last - first).total_seconds() // step) + 1
        pad, bottom = 4, height - 14
        bar = (width - 2 * pad) / max(slots, 1)
        top = max(sum(c.values()) for c in counts.values())
        rects = []
        for start, by_type in counts.items():
            slot = int((dt.datetime.fromisoformat(start) - first).total_seconds() // step)
            y = float(bottom)
            for kind, count in sorted(by_type.items()):
                h = (bottom - pad) * count / top
                y -= h
                rects.append(
                    (
                        f"{pad + slot * bar:.1f}",
                        f"{y:.1f}",
                        f"{max(bar - 1, 1):.1f}",
                        f"{h:.1f}",
                        TYPE_COLOURS.get(kind, "#555"),
                        f"{start[:16].replace('T', ' ')} UTC: {count} {kind}",
                    )
                )
        body = format_html_join(
            "",
            '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>',
            rects,
        ) + format_html(
            '<text x="{}" y="{}" font-size="10" fill="#555">{}</text>'
            '<text x="{}" y="{}" font-size="10" fill="#555" text-anchor="end">{}</text>',
            pad,
            height - 2,
            starts[0][:16].replace("T", " "),
            width - pad,
            height - 2,
            starts[-1][:16].replace("T", " "),
        )
    return format_html(
        '<svg class="cdc-histogram" xmlns="http://www.w3.org/2000/svg" width="{w}" '
        'height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{t}"><title>{t}</title>'
        '<rect x="0" y="0" width="{w}" height="{h}" fill="none" stroke="#ccc"/>{b}</svg>',
        w=width,
        h=height,
        t=title,
        b=body,
    )


def panel(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """The template context of the panel (None: nothing to show)."""
    if report is None or not report["total"]:
        return None
    return {"report": report, "histogram": histogram_svg(report), "legend": TYPE_COLOURS}


def job_panel(job: ReconciliationJob) -> dict[str, Any] | None:
    try:
        return panel(job_forensics(job))
    except JobStillRunning:
        return None


def table_panel(table: str | None) -> dict[str, Any] | None:
    return panel(table_forensics(table)) if table else None


def forensics_for_list(job_id: str | None, table: str | None) -> dict[str, Any] | None:
    """The mismatch list's panel: the chosen job's, else the chosen (known) table's."""
    if job_id:
        try:
            job = ReconciliationJob.objects.filter(pk=uuid.UUID(job_id)).first()
        except ValueError:
            job = None
        return job_panel(job) if job is not None else None
    if table and TableMapping.objects.filter(name=table).exists():
        return table_panel(table)
    return None
