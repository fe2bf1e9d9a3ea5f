"""Creating and running reconciliation jobs (the Django side of the engine).

``create_job`` claims a table atomically: the partial unique index
``one_running_job_per_table`` lets PostgreSQL refuse a second RUNNING job for one table, so
two beats, two API calls or a CLI run racing each other can never run one table twice.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from reconciliation.choices import JobStatus, JobType
from reconciliation.models import ReconciliationJob, TableMapping


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
