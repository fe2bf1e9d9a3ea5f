"""Creating and running reconciliation jobs (the Django side of the engine).

``run_job`` resolves the job's table mapping, runs the engine (``reconciliation.engine``,
which knows nothing of Django) and records the outcome: counters, drift, alert level and
the mismatches (``bulk_create``, a thousand at a time).  Whatever goes wrong, the job ends
FAILED with a message saying which store or which column, never RUNNING.

``create_job`` claims a table atomically: the partial unique index
``one_running_job_per_table`` lets PostgreSQL refuse a second RUNNING job for one table, so
two beats, two API calls or a CLI run racing each other can never run one table twice.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg
from cassandra import DriverException, OperationTimedOut, Unauthorized
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionException
from django.db import Error as DjangoDatabaseError
from django.db import IntegrityError, transaction
from django.utils import timezone
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from cdcrecon.conf import MAX_SAMPLE_SIZE, settings
from reconciliation.choices import AlertLevel, JobPhase, JobStatus, JobType, ValidationStrategy
from reconciliation.connections import (
    StoreUnavailable,
    consistency_level,
    ensure_app_database,
)
from reconciliation.engine.keys import BadKey
from reconciliation.engine.schema import SchemaError
from reconciliation.engine.strategies import RECHECK_PROGRESS, Difference, Options, Outcome
from reconciliation.ledger import engine_for, heal_covered
from reconciliation.models import Finding, Mismatch, ReconciliationJob, TableMapping
from reconciliation.registry import TableNotFound, UnknownTable, get_mapping


class JobAlreadyRunning(Exception):
    def __init__(self, job: ReconciliationJob) -> None:
        super().__init__(
            f"A job for table {job.table_name!r} is already running: {job.job_id} "
            f"(started {job.started_at:%Y-%m-%d %H:%M:%S} UTC)."
        )
        self.job = job


def create_job(
    mapping: TableMapping,
    strategy: str,
    *,
    job_type: str = JobType.MANUAL,
    parameters: dict[str, Any] | None = None,
    requested_by: Any = None,
) -> ReconciliationJob:
    """A new RUNNING job for ``mapping``; JobAlreadyRunning if the table has one."""
    try:
        with transaction.atomic():
            return ReconciliationJob.objects.create(
                table_name=mapping.name,
                job_type=job_type,
                validation_strategy=strategy,
                parameters=parameters or {},
                status=JobStatus.RUNNING,
                requested_by=requested_by
                if getattr(requested_by, "is_authenticated", False)
                else None,
            )
    except IntegrityError:
        running = ReconciliationJob.objects.filter(
            table_name=mapping.name, status=JobStatus.RUNNING
        ).first()
        if running is None:  # it finished in between: the caller may simply try again
            raise
        raise JobAlreadyRunning(running) from None


class BadJobRequest(ValueError):
    """A request for a job that cannot run as asked; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def build_parameters(
    strategy: str,
    *,
    window_from: datetime | None = None,
    window_to: datetime | None = None,
    sample_size: int | None = None,
) -> dict[str, Any]:
    """Check a job's options against its strategy and return them as ``job.parameters``.

    ``from``/``to`` belong to TIMESTAMP_RANGE (either may be omitted: the runner then uses
    the last scheduling interval plus a small overlap); ``sample_size`` belongs to SAMPLE
    (default RECONCILIATION_SAMPLE_SIZE).  Datetimes are stored as ISO 8601 UTC.
    """
    if strategy not in ValidationStrategy.values:
        raise BadJobRequest(
            "validation_strategy",
            f"Unknown validation strategy {strategy!r}; use one of "
            f"{', '.join(ValidationStrategy.values)}.",
        )
    parameters: dict[str, Any] = {}
    if window_from is not None or window_to is not None:
        if strategy != ValidationStrategy.TIMESTAMP_RANGE:
            raise BadJobRequest("from", "'from' and 'to' apply only to TIMESTAMP_RANGE validation.")
        for name, value in (("from", window_from), ("to", window_to)):
            if value is not None:
                if timezone.is_naive(value):
                    raise BadJobRequest(
                        name, f"'{name}' needs a time zone, e.g. 2025-11-25T10:00:00Z."
                    )
                parameters[name] = value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        if window_from is not None and window_to is not None and window_from >= window_to:
            raise BadJobRequest("from", "'from' must be earlier than 'to'.")
    if sample_size is not None:
        if strategy != ValidationStrategy.SAMPLE:
            raise BadJobRequest("sample_size", "'sample_size' applies only to SAMPLE validation.")
        limit = MAX_SAMPLE_SIZE
        if (
            isinstance(sample_size, bool)
            or not isinstance(sample_size, int)
            or not 1 <= sample_size <= limit
        ):
            raise BadJobRequest(
                "sample_size", f"'sample_size' must be a whole number from 1 to {limit}."
            )
        parameters["sample_size"] = sample_size
    return parameters


# -- running a job ------------------------------------------------------------------------------

MISMATCH_BATCH = 1000
TOUCH_EVERY_SECONDS = 2.0
# How long the failure path keeps trying to record FAILED on a fresh app-database
# connection (a PostgreSQL restart takes a few seconds); the reaper is the last resort.
RECORD_FAILURE_SECONDS = 30.0


class _Touch:
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


class _MismatchWriter:
    """The engine's report callback: the job's findings go to the ledger a thousand at a
    time (``MismatchQuerySet.record_findings``: one open difference per key, refreshed or
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
            self.written += Mismatch.objects.record_findings(self.job, self.pending)
            self.pending = []


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def engine_options(job: ReconciliationJob) -> Options:
    conf = settings.reconciliation
    parameters = job.parameters or {}
    return Options(
        consistency=consistency_level(),
        recheck_delay_seconds=conf.recheck_delay_seconds,
        sample_size=int(parameters.get("sample_size") or conf.sample_size),
        window_from=_parse_time(parameters.get("from")),
        window_to=_parse_time(parameters.get("to")),
        interval_minutes=conf.interval_minutes,
        target_url=settings.target.database_url,
    )


def describe_failure(exc: BaseException) -> str:
    """A message for ``job.error_message``: which store failed and why, in a sentence."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, UnknownTable | TableNotFound | SchemaError | StoreUnavailable):
        return text
    if isinstance(exc, DjangoDatabaseError):  # Django's own connection: the app database
        return f"The app database (PostgreSQL) failed: {type(exc).__name__}: {text}"
    if isinstance(exc, BadKey | BadJobRequest):
        return f"Bad job parameters: {text}"
    if isinstance(exc, psycopg.OperationalError):
        return f"Target PostgreSQL is unreachable or failed: {text}"
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return f"Target PostgreSQL refused access (check the user's permissions): {text}"
    if isinstance(exc, psycopg.Error):
        return f"Target PostgreSQL failed: {text}"
    if isinstance(exc, NoHostAvailable | OperationTimedOut | ConnectionException):
        return f"Cassandra is unreachable: {text}"
    if isinstance(exc, Unauthorized):
        return f"Cassandra refused access (check the user's permissions): {text}"
    if isinstance(exc, DriverException):
        return f"Cassandra failed: {text}"
    if type(exc).__name__ == "SoftTimeLimitExceeded":
        return (
            f"Stopped: the job time limit of {settings.reconciliation.job_time_limit_seconds} s "
            "(RECONCILIATION_JOB_TIME_LIMIT_SECONDS) was exceeded."
        )
    if isinstance(exc, KeyboardInterrupt):
        return "Interrupted."
    return f"The job failed unexpectedly: {type(exc).__name__}: {text}"


def run_job(
    job: ReconciliationJob, *, on_progress: Callable[[float], None] | None = None
) -> ReconciliationJob:
    """Run a RUNNING job's strategy and record its result: COMPLETED, or FAILED with a
    message.  It never leaves the job RUNNING; only non-``Exception`` errors (a
    KeyboardInterrupt, SystemExit) are raised again, after the job is marked FAILED.

    ``on_progress`` (the CLI's progress bar) gets every progress fraction the engine reports.
    """
    if job.status != JobStatus.RUNNING:
        return job
    writer = _MismatchWriter(job)
    try:
        ensure_app_database()
        job.enter_phase(JobPhase.READING)
        job.touch(0.0)
        mapping = get_mapping(job.table_name)
        # engine_for probes the Cassandra session (rebuilt once if broken) before the first
        # read; transient errors are then retried per statement (per token segment or page).
        engine = engine_for(mapping, engine_options(job), writer, _Touch(job, on_progress))
        outcome = engine.run(job.validation_strategy)
        job.enter_phase(JobPhase.WRITING)
        writer.flush()
        heal_covered(job, engine, outcome)
        _complete(job, mapping, outcome)
    except BaseException as exc:
        record_failure(job, describe_failure(exc))
        if not isinstance(exc, Exception):
            raise
    return job


def record_failure(job: ReconciliationJob, message: str) -> bool:
    """``job.mark_failed(message)``, on a fresh app-database connection if the old one died.

    A PostgreSQL restart kills the worker's connection: the first attempt then fails with
    "the connection is closed", and the next ones reconnect (every half second, for up to
    RECORD_FAILURE_SECONDS) until the database is back.  Only if it never comes back is the
    job left to the reaper.
    """
    for attempt in Retrying(
        stop=stop_after_delay(RECORD_FAILURE_SECONDS),
        wait=wait_fixed(0.5),
        retry=retry_if_exception_type(DjangoDatabaseError),
        reraise=True,
    ):
        with attempt:
            if attempt.retry_state.attempt_number > 1:
                ensure_app_database()
            return job.mark_failed(message)
    raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover


def _complete(job: ReconciliationJob, mapping: TableMapping, outcome: Outcome) -> None:
    # A run that examined nothing (an empty window, an empty table) is inconclusive: no
    # drift (not 0%), no alert level, so no gauge and no green badge.
    conclusive = outcome.keys_examined > 0  # ROW_COUNT: the larger of its two counts
    drift = outcome.drift_percentage if conclusive else None
    # An estimate alerts only when even the lower bound of its 95% interval passes the
    # threshold (as the Prometheus rules judge it).
    estimate = job.validation_strategy == ValidationStrategy.SAMPLE
    judged = outcome.drift_ci_low if estimate and outcome.drift_ci_low is not None else drift
    level = mapping.alert_level_for(judged if drift is not None else None)
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
        "unreadable_value_count": outcome.unreadable_value_count,
        "drift_percentage": drift,
        "drift_ci_low": outcome.drift_ci_low if drift is not None else None,
        "drift_ci_high": outcome.drift_ci_high if drift is not None else None,
        "alert_level": level,
        "alert_fired": level != AlertLevel.NONE,
        "schema_warnings": outcome.schema_warnings,
        "parameters": {**(job.parameters or {}), **outcome.parameters},
    }
    # Conditional, like every status change: a job the reaper already failed stays FAILED.
    if ReconciliationJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(**fields):
        for name, value in fields.items():
            setattr(job, name, value)
    else:
        job.refresh_from_db()
