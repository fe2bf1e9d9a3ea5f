"""Creating a job: checking what was asked, claiming the table, and the engine's options.

``create_job`` claims a table atomically: the partial unique index
``one_running_job_per_table`` lets PostgreSQL refuse a second RUNNING job for one table, so
two beats, two API calls or a CLI run racing each other can never run one table twice.
"""

from __future__ import annotations

import datetime as dt
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from cdcrecon.conf import MAX_SAMPLE_SIZE, settings
from reconciliation.choices import JobStatus, JobType, ValidationStrategy
from reconciliation.connections import consistency_level
from reconciliation.engine import Options
from reconciliation.models import ReconciliationJob, TableMapping
from reconciliation.ratelimit import caps_for


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


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


# From this share of differing keys in a table's last run, a run decodes every row in its
# scan (with write times) instead of comparing byte forms and reading the differing keys
# again: reading many keys one by one costs more than decoding them all (a pipeline outage).
HIGH_DIFFERENCE_SHARE = 0.02


def expects_few_differences(job: ReconciliationJob) -> bool:
    """Whether the table's last completed run before ``job`` found few differing keys
    (fewer than ``HIGH_DIFFERENCE_SHARE`` of those it examined; no such run: yes).  The same
    answer for every piece of the job: a table has one job running at a time."""
    previous = (
        ReconciliationJob.objects.filter(
            table_name=job.table_name, status=JobStatus.COMPLETED, started_at__lt=job.started_at
        )
        .exclude(pk=job.pk)
        .order_by("-started_at")
        .values("keys_examined", "mismatch_count", "transient_count", "in_flight_count")
        .first()
    )
    if previous is None or not previous["keys_examined"]:
        return True
    differing = sum(
        previous[f] or 0 for f in ("mismatch_count", "transient_count", "in_flight_count")
    )
    return differing < HIGH_DIFFERENCE_SHARE * previous["keys_examined"]


def engine_options(job: ReconciliationJob, mapping: TableMapping | None = None) -> Options:
    """The engine's options for ``job``: its window or sample size, its table's CDC lag
    budget, its read-rate caps (``ratelimit.caps_for``), and the settings."""
    conf = settings.reconciliation
    parameters = job.parameters or {}
    if mapping is None:
        mapping = TableMapping.objects.filter(name=job.table_name).first()
    budget = mapping.lag_budget_seconds if mapping is not None else conf.cdc_lag_budget_seconds
    return Options(
        lag_budget_seconds=budget,
        reads_began_at=job.started_at.timestamp() if job.started_at else None,
        consistency=consistency_level(),
        recheck_delay_seconds=conf.recheck_delay_seconds,
        sample_size=int(parameters.get("sample_size") or conf.sample_size),
        window_from=_parse_time(parameters.get("from")),
        window_to=_parse_time(parameters.get("to")),
        interval_minutes=conf.interval_minutes,
        source_limiter=caps_for(mapping) if mapping is not None else None,
        byte_forms=expects_few_differences(job),
    )
