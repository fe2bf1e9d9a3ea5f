"""Jobs as the API shows them, for every caller that is not a DRF view (the CLI's --json).

``job_detail(job)`` is the body of ``GET /reconciliation/jobs/{job_id}``: the guide's job
fields plus the differences it found (at most ``JOB_DETAIL_MISMATCH_LIMIT``, newest first).
Datetimes are ISO 8601 in UTC with a ``Z`` suffix; ids are UUID strings.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from reconciliation.choices import JobStatus, JobType, SegmentKind, SegmentStatus
from reconciliation.models import JobFinding, JobSegment, Mismatch, ReconciliationJob
from reconciliation.models.segments import segment_counts
from reconciliation.repair.runs import run_view

JOB_FIELDS = (
    "job_id",
    "table_name",
    "job_type",
    "validation_strategy",
    "started_at",
    "completed_at",
    "status",
    "cassandra_row_count",
    "postgres_row_count",
    "mismatch_count",
    "drift_percentage",
    "alert_fired",
)
#: Beyond the guide: why a FAILED job failed (store and error) and where a job is; who
#: started it (a username, "schedule", or null: CLI, deleted user); how far it got (percent,
#: and its token-range segments: compared / planned, 0 / 0 for SAMPLE); values neither side
#: could read; what the run examined, schema warnings, whether it was inconclusive (examined
#: nothing: no drift, no badge), and the TIMESTAMP_RANGE window; how it told drift from
#: differences in flight (the rule, the CDC lag budget, how many were in flight or expired);
#: the rate at which it read Cassandra (rows/s, under the read-rate cap if any).
JOB_EXTRA_FIELDS = (
    "error_message",
    "phase",
    "requested_by",
    "progress",
    "segments_total",
    "segments_done",
    "unreadable_value_count",
    "keys_examined",
    "schema_warnings",
    "inconclusive",
    "window",
    "transient_count",
    "in_flight_count",
    "expired_count",
    "recheck_rule",
    "lag_budget_seconds",
    "source_rows_per_second",
    "repair_summary",
    "repair_run",
)
MISMATCH_SUMMARY_FIELDS = (
    "mismatch_id",
    "primary_key_value",
    "mismatch_type",
    "cassandra_checksum",
    "postgres_checksum",
    "detected_at",
    "resolution_status",
)
JOB_DETAIL_MISMATCH_LIMIT = 1000
#: The job JSON's fields that are not columns of the job (computed, or counted from its
#: segments).
JOB_COMPUTED_FIELDS = ("inconclusive", "window", "segments_total", "segments_done")
#: The model fields a job's JSON reads (for ``.only()``).
JOB_MODEL_FIELDS = (
    *JOB_FIELDS,
    *(name for name in JOB_EXTRA_FIELDS if name not in JOB_COMPUTED_FIELDS),
    "parameters",
)
#: Added to the guide's mismatch: the ledger's history of the difference.
MISMATCH_LEDGER_FIELDS = (
    "first_seen_at",
    "last_seen_at",
    "times_seen",
    "last_job_id",
    "reappeared_at",
    "source_write_time",
    "source_ttl_seconds",
    "recheck_after",
)


def iso(value: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC with ``Z`` (``2025-11-25T10:00:00Z``; microseconds when any)."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return iso(value)
    if hasattr(value, "hex") and type(value).__name__ == "UUID":
        return str(value)
    return value


SCHEDULE = "schedule"


def requested_by_name(job: ReconciliationJob) -> str | None:
    """Who started ``job``: the user's name, ``"schedule"`` for a scheduled run, else None
    (started from the command line, or by a user since deleted)."""
    if job.requested_by_id is not None and job.requested_by is not None:
        return job.requested_by.get_username()
    if job.job_type == JobType.HOURLY_SCHEDULED:
        return SCHEDULE
    return None


def progress_percent(job: ReconciliationJob) -> float:
    """How far the job got, 0-100 (a percentage like ``drift_percentage``).

    A COMPLETED job is at 100; a FAILED one shows where it stopped.
    """
    if job.status == JobStatus.COMPLETED:
        return 100.0
    return round(max(0.0, min(1.0, job.progress or 0.0)) * 100, 1)


def with_segment_counts(
    jobs: QuerySet[ReconciliationJob],
) -> QuerySet[ReconciliationJob]:
    """``jobs`` with ``segments_total`` and ``segments_done`` counted in the same query
    (COMPARE segments, as ``segment_counts``), so a page of jobs costs one query, not one
    per job.  ``job_summary`` reads these annotations when they are there.

    Correlated subqueries rather than a join with ``GROUP BY``: PostgreSQL evaluates them
    for the page's rows only (after the ``LIMIT``), where the join counts the segments of
    every job that matches the filters first (measured on 5,000 jobs of 128 segments each:
    4 ms against 350 ms of SQL for a page of 100).
    """
    compare = JobSegment.objects.filter(job=OuterRef("pk"), kind=SegmentKind.COMPARE)
    per_job = compare.order_by().values("job")

    def count(where: Q | None = None) -> Coalesce:
        counted = per_job.annotate(n=Count("pk", filter=where)).values("n")
        return Coalesce(Subquery(counted), 0, output_field=IntegerField())

    return jobs.annotate(segments_total=count(), segments_done=count(Q(status=SegmentStatus.DONE)))


def job_segment_counts(job: ReconciliationJob) -> dict[str, int]:
    """``{"segments_total", "segments_done"}``: annotated by ``with_segment_counts``, or
    counted now (one query)."""
    total = getattr(job, "segments_total", None)
    done = getattr(job, "segments_done", None)
    if total is None or done is None:
        return segment_counts(job)
    return {"segments_total": total, "segments_done": done}


def job_summary(job: ReconciliationJob) -> dict[str, Any]:
    """One job as in ``GET /reconciliation/jobs`` (the guide's fields, then our additions)."""
    body = {name: _json_value(getattr(job, name)) for name in JOB_FIELDS}
    body["error_message"] = job.error_message or None  # null unless the job failed
    body["phase"] = job.phase
    body["requested_by"] = requested_by_name(job)
    body["progress"] = progress_percent(job)
    body.update(job_segment_counts(job))
    body["keys_examined"] = job.keys_examined
    body["schema_warnings"] = list(job.schema_warnings or [])
    body["inconclusive"] = job.is_inconclusive
    body["window"] = job.window
    body["unreadable_value_count"] = job.unreadable_value_count
    body["transient_count"] = job.transient_count
    body["in_flight_count"] = job.in_flight_count
    body["expired_count"] = job.expired_count
    body["recheck_rule"] = job.recheck_rule or None  # null: a job from before the rules
    body["lag_budget_seconds"] = job.lag_budget_seconds
    body["source_rows_per_second"] = job.source_rows_per_second
    body["repair_summary"] = job.repair_summary  # null: no repair policy ran after it
    body["repair_run"] = run_view(job.repair_run)  # running, interrupted, done; or null
    return body


def mismatch_summary(mismatch: Mismatch, found_as: str | None = None) -> dict[str, Any]:
    """One mismatch as embedded in a job's details (``found_as``: the type that job saw)."""
    body = {name: _json_value(getattr(mismatch, name)) for name in MISMATCH_SUMMARY_FIELDS}
    if found_as is not None:
        body["mismatch_type"] = found_as
    for name in MISMATCH_LEDGER_FIELDS:
        body[name] = _json_value(getattr(mismatch, name))
    return body


def job_detail(job: ReconciliationJob, limit: int = JOB_DETAIL_MISMATCH_LIMIT) -> dict[str, Any]:
    """The job as ``GET /reconciliation/jobs/{job_id}`` returns it: with the differences
    *this job* found (its ``JobFinding`` rows, and those it first found), each as it
    stands now but with the type this job saw."""
    found = JobFinding.objects.filter(job=job).values("mismatch_id")
    mismatches = list(
        Mismatch.objects.filter(Q(job=job) | Q(pk__in=found))
        .only(*MISMATCH_SUMMARY_FIELDS, *MISMATCH_LEDGER_FIELDS)
        .order_by("-detected_at", "mismatch_id")[:limit]
    )
    seen_as = dict(
        JobFinding.objects.filter(
            job=job, mismatch_id__in=[m.mismatch_id for m in mismatches]
        ).values_list("mismatch_id", "mismatch_type")
    )
    return {
        **job_summary(job),
        "mismatches": [mismatch_summary(m, seen_as.get(m.mismatch_id)) for m in mismatches],
    }
