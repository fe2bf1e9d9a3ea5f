"""The job page's segments (their list and summary) and resuming a FAILED job from the
admin (an action, and the job page's button)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import admin, messages
from django.db.models import Case, Count, IntegerField, Q, Value, When
from django.http import HttpRequest
from django.utils.html import format_html

from reconciliation.admin.common import job_url
from reconciliation.admin.views import badge
from reconciliation.choices import SegmentKind, SegmentStatus
from reconciliation.jobs import JobAlreadyRunning, JobNotResumable, resume_job
from reconciliation.models import JobSegment, ReconciliationJob

#: The job page lists at most this many segments (a job has up to 4,096 per kind),
#: unfinished ones first.
SEGMENT_LIST_LIMIT = 200


def resume(
    model_admin: admin.ModelAdmin, request: HttpRequest, job: ReconciliationJob
) -> ReconciliationJob | None:
    """``resume_job`` for one job, reporting the outcome as an admin message."""
    name = f"{job.table_name} {job.validation_strategy} job {job.job_id}"
    try:
        resumed = resume_job(job, request.user)  # queued once it commits
    except JobNotResumable as exc:
        model_admin.message_user(request, f"{name}: not resumed: {exc}", messages.WARNING)
        return None
    except JobAlreadyRunning as exc:
        model_admin.message_user(
            request,
            format_html(
                '{}: not resumed: {} <a href="{}">Open the running job</a>.',
                name,
                str(exc),
                job_url(exc.job.job_id),
            ),
            messages.WARNING,
        )
        return None
    counts = JobSegment.objects.filter(job_id=job.pk).aggregate(
        total=Count("pk"), open=Count("pk", filter=~Q(status=SegmentStatus.DONE))
    )
    redo = (
        f"{counts['open']:,} of {counts['total']:,} segments to run again"
        if counts["total"]
        else "it runs again from the start"
    )
    model_admin.message_user(
        request,
        format_html(
            'Resumed {} {} job <a href="{}">{}</a>: {}.',
            job.table_name,
            job.validation_strategy,
            job_url(job.job_id),
            job.job_id,
            redo,
        ),
        messages.SUCCESS,
    )
    return resumed


def segments_context(job: ReconciliationJob) -> dict[str, Any]:
    """The job page's segment list: per kind, how many are in each status; then up to
    ``SEGMENT_LIST_LIMIT`` segments, unfinished first, stage before compare, in order."""
    by_status: dict[str, dict[str, int]] = {}
    for kind, status, n in (
        JobSegment.objects.filter(job_id=job.pk)
        .order_by()
        .values_list("kind", "status")
        .annotate(n=Count("pk"))
    ):
        by_status.setdefault(kind, {})[status] = n
    total = sum(n for counts in by_status.values() for n in counts.values())
    if not total:
        return {"segments": [], "segments_total": 0, "segment_summary": []}
    summary = []
    for kind in (SegmentKind.STAGE, SegmentKind.COMPARE):
        counts = by_status.get(kind)
        if not counts:
            continue
        others = ", ".join(
            f"{counts[status]:,} {status.lower()}"
            for status in (SegmentStatus.RUNNING, SegmentStatus.QUEUED, SegmentStatus.PENDING)
            if counts.get(status)
        )
        summary.append(
            f"{kind}: {counts.get(SegmentStatus.DONE, 0):,} of {sum(counts.values()):,} done"
            + (f" ({others})" if others else "")
        )
    finished_last = Case(
        When(status=SegmentStatus.DONE, then=Value(1)),
        default=Value(0),
        output_field=IntegerField(),
    )
    stage_first = Case(
        When(kind=SegmentKind.STAGE, then=Value(0)), default=Value(1), output_field=IntegerField()
    )
    segments = JobSegment.objects.filter(job_id=job.pk).order_by(
        finished_last, stage_first, "number"
    )[:SEGMENT_LIST_LIMIT]
    rows = [_segment_row(segment) for segment in segments]
    return {"segments": rows, "segments_total": total, "segment_summary": summary}


def _segment_row(segment: JobSegment) -> dict[str, Any]:
    """One segment as the job page shows it.  Counts are shown once it is done; a STAGE
    segment reads only the target, so it has no Cassandra rows and no differences."""
    done = segment.status == SegmentStatus.DONE
    compares = segment.kind == SegmentKind.COMPARE

    def when(value: dt.datetime | None) -> tuple[str, str]:
        if value is None:
            return "—", ""
        return f"{value:%H:%M:%S}", f"{value:%Y-%m-%d %H:%M:%S} UTC"

    def count(value: int, applies: bool = True) -> str:
        return f"{value:,}" if done and applies else "—"

    duration = segment.duration_seconds
    return {
        "kind": segment.kind,
        "number": segment.number,
        # "(start, end]" without its "tokens"/"blocks" word: the kind says which.
        "range": segment.range_label.split(" ", 1)[-1],
        "status": badge(segment.status, segment.status),
        "status_value": segment.status.lower(),
        "attempts": segment.attempts,
        "worker": segment.worker or "—",
        "started": when(segment.started_at),
        "finished": when(segment.finished_at),
        "duration": "—" if duration is None else f"{duration:,.1f} s",
        "cassandra_rows": count(segment.cassandra_rows, compares),
        "postgres_rows": count(segment.postgres_rows),
        "differences": count(segment.difference_count, compares),
        "error": segment.error_message,
    }
