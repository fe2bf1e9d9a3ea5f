"""Ending a job: the one step after every segment is DONE (and the whole of a SAMPLE).

``finalize`` sums the segments' counts, judges every difference the segments found once
(``engine.conclude``: the target rows are read back, each key judged by its source write
time against the CDC lag budget, or re-checked after the grace delay: ``Engine.judge``),
records the findings in the ledger (in-flight ones as IN_FLIGHT, re-checked later by
``reconciliation.ledger.inflight``)
(``ledger.record.record_findings``: one open difference per key, refreshed or reopened,
never duplicated), heals what the run covered, and sets the job COMPLETED with its drift and
alert level.  Running it twice (a redelivered coordinator) gives the same result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.db.models import Max, Min, Sum
from django.utils import timezone

from reconciliation.choices import JobPhase, JobStatus, SegmentKind, ValidationStrategy
from reconciliation.engine import (
    NO_RECHECK,
    RECHECK_PROGRESS,
    WRITE_TIME,
    Difference,
    Engine,
    Options,
    Outcome,
    conclude,
    keydiff_outcome,
    row_count_outcome,
    window_parameters,
)
from reconciliation.engine.merge import PassCounts
from reconciliation.jobs import staging
from reconciliation.jobs.segments import job_differences, job_window
from reconciliation.ledger.reads import heal_covered
from reconciliation.ledger.record import record_findings
from reconciliation.ledger.verdict import judge
from reconciliation.models import Finding, ReconciliationJob, TableMapping

MISMATCH_BATCH = 1000
TOUCH_EVERY_SECONDS = 2.0


class Touch:
    """The engine's progress callback: ``job.touch`` every couple of seconds, and at once
    whenever the job passes a tenth (0.3 = the target is read, 0.9 = the re-check starts)."""

    def __init__(self, job: ReconciliationJob, also: Callable[[float], None] | None = None) -> None:
        self.job = job
        self.also = also
        self.last = 0.0
        self.last_fraction = 0.0

    def __call__(self, fraction: float) -> None:
        if self.also is not None:
            self.also(fraction)
        now = time.monotonic()
        if RECHECK_PROGRESS <= fraction < 1.0 and self.job.phase == JobPhase.READING:
            self.job.enter_phase(JobPhase.RECHECKING)
        if now - self.last >= TOUCH_EVERY_SECONDS or int(fraction * 10) > int(
            self.last_fraction * 10
        ):
            self.last, self.last_fraction = now, fraction
            self.job.touch(fraction)


class MismatchWriter:
    """The engine's report callback: the job's findings go to the ledger a thousand at a
    time (``ledger.record.record_findings``: one open difference per key, refreshed or
    reopened, never duplicated; each key also recorded as this job's ``JobFinding``)."""

    def __init__(self, job: ReconciliationJob) -> None:
        self.job = job
        self.pending: list[Finding] = []
        self.written = 0

    def __call__(self, difference: Difference) -> None:
        self.pending.append(difference)
        if len(self.pending) >= MISMATCH_BATCH:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.written += record_findings(self.job, self.pending)
            self.pending = []


def segmented_outcome(job: ReconciliationJob, engine: Engine) -> Outcome:
    """The job's result from its DONE segments: totals, and (key by key) every difference
    re-checked and reported once."""
    totals = job.segments.filter(kind=SegmentKind.COMPARE).aggregate(
        cassandra=Sum("cassandra_rows"), postgres=Sum("postgres_rows"), keys=Sum("keys")
    )
    if job.validation_strategy == ValidationStrategy.ROW_COUNT:
        return row_count_outcome(totals["cassandra"] or 0, engine.postgres.count())
    counts = PassCounts(totals["cassandra"] or 0, totals["postgres"] or 0, totals["keys"] or 0)
    window = job_window(job, engine)
    verdicts = conclude(engine, job_differences(job), window=window)
    outcome = keydiff_outcome(counts, verdicts)
    if window is not None:
        outcome.parameters = window_parameters(window)
    return outcome


def source_read_rate(job: ReconciliationJob, engine: Engine, segmented: bool) -> float | None:
    """The rate the job read Cassandra (rows/s): a segmented job's source rows over the wall
    time of its COMPARE segments (first start to last finish, whichever workers ran them); a
    whole run's (SAMPLE) rows read over the time since its reads began.  None when it read
    nothing, or in no measurable time."""
    if segmented:
        spans = job.segments.filter(kind=SegmentKind.COMPARE).aggregate(
            rows=Sum("cassandra_rows"), first=Min("started_at"), last=Max("finished_at")
        )
        rows = spans["rows"] or 0
        if not rows or spans["first"] is None or spans["last"] is None:
            return None
        seconds = (spans["last"] - spans["first"]).total_seconds()
    else:
        rows = engine.cassandra.rows_read
        seconds = time.time() - engine.reads_began_at
    return rows / seconds if rows and seconds > 0 else None


def finalize(
    job: ReconciliationJob,
    mapping: TableMapping,
    engine: Engine,
    writer: MismatchWriter,
    outcome: Outcome | None = None,
) -> None:
    """Record a job's result: the segments' (``outcome`` None) or a whole run's (SAMPLE)."""
    rate = source_read_rate(job, engine, segmented=outcome is None)
    if outcome is None:
        job.enter_phase(JobPhase.RECHECKING)
        engine.progress(RECHECK_PROGRESS)
        outcome = segmented_outcome(job, engine)
        outcome.schema_warnings = list(engine.layout.warnings)
        outcome.unreadable_value_count = engine.unreadable_values
    job.enter_phase(JobPhase.WRITING)
    writer.flush()
    heal_covered(job, engine, outcome)
    # ROW_COUNT compares no keys: nothing to re-check.
    rule = NO_RECHECK if job.validation_strategy == ValidationStrategy.ROW_COUNT else None
    _complete(job, mapping, outcome, rule or engine.recheck_rule, engine.options, rate)
    if job.status == JobStatus.COMPLETED:
        staging.drop(job)


def _complete(
    job: ReconciliationJob,
    mapping: TableMapping,
    outcome: Outcome,
    recheck_rule: str,
    options: Options,
    source_rows_per_second: float | None = None,
) -> None:
    lag_budget = options.lag_budget_seconds if recheck_rule == WRITE_TIME else None
    # A run that examined nothing (an empty window, an empty table) is inconclusive: no
    # drift (not 0%), no alert level, so no gauge and no green badge.
    # ROW_COUNT: keys_examined is the larger of its two counts.
    verdict = judge(
        job.validation_strategy,
        outcome.keys_examined,
        outcome.drift_percentage,
        (outcome.drift_ci_low, outcome.drift_ci_high),
        mapping.thresholds,
    )
    now = timezone.now()
    fields: dict[str, Any] = {
        "status": JobStatus.COMPLETED,
        "phase": JobPhase.DONE,
        "completed_at": now,
        "heartbeat_at": now,
        "progress": 1.0,
        "cassandra_row_count": outcome.cassandra_row_count,
        "postgres_row_count": outcome.postgres_row_count,
        "keys_examined": outcome.keys_examined,
        "mismatch_count": outcome.mismatch_count,
        "transient_count": outcome.transient_count,
        "in_flight_count": outcome.in_flight_count,
        "expired_count": outcome.expired_count,
        "recheck_rule": recheck_rule,
        "lag_budget_seconds": lag_budget,
        "source_rows_per_second": source_rows_per_second,
        "unreadable_value_count": outcome.unreadable_value_count,
        "drift_percentage": verdict.drift_percentage,
        "drift_ci_low": verdict.drift_ci_low,
        "drift_ci_high": verdict.drift_ci_high,
        "alert_level": verdict.alert_level,
        "alert_fired": verdict.alert_fired,
        "schema_warnings": outcome.schema_warnings,
        "parameters": {**(job.parameters or {}), **outcome.parameters},
    }
    # Conditional, like every status change: a job the reaper already failed stays FAILED.
    if ReconciliationJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(**fields):
        for name, value in fields.items():
            setattr(job, name, value)
    else:
        job.refresh_from_db()
