"""Celery tasks: one task runs one job; the API, beat and the admin only enqueue.

Concurrency.  At most ``RECONCILIATION_MAX_CONCURRENT_JOBS`` jobs execute at once across
all workers.  The semaphore is N PostgreSQL advisory locks, ``(JOB_SLOT_LOCK_KEY, slot)``
for slot in 0..N-1, taken with ``pg_try_advisory_lock`` on a connection of the task's own
that lives exactly as long as the run: if the worker dies, PostgreSQL ends the session and
frees the slot, so no slot is ever lost.  A task that finds every slot taken touches its
job's heartbeat (waiting in line is a sign of life for the reaper) and retries a few
seconds later.  "Never two RUNNING jobs on one table" is a separate guarantee, given by the
partial unique index behind ``reconciliation.jobs.create_job``.

Heartbeat.  ``run_job`` touches the job as it progresses; a small thread also touches it
every third of ``RECONCILIATION_HEARTBEAT_TIMEOUT_SECONDS`` so one long query (a large
COUNT) does not look like a dead worker.  The thread dies with the worker, so the reaper
(``reconciliation.schedule.reap_stalled_jobs``) still catches a job whose worker died.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import connection, transaction
from django.utils import timezone

from cdcrecon.conf import settings
from reconciliation.choices import JobPhase, JobStatus
from reconciliation.connections import ensure_app_database
from reconciliation.models import ReconciliationJob

logger = logging.getLogger(__name__)

# First key of the two-int advisory locks that make up the job semaphore ("cdrc").
JOB_SLOT_LOCK_KEY = 0x63647263

# What execute_job reports back to the task.
NO_SLOT = "NO_SLOT"
MISSING = "MISSING"


@contextmanager
def job_slot(slots: int | None = None) -> Iterator[int | None]:
    """Hold one of ``slots`` (default: max_concurrent_jobs) slots; yield its number or None.

    The locks are held by a dedicated connection rather than Django's, so nothing the job
    does with Django's connection (transactions, a reconnect) can drop the slot early.
    """
    slots = settings.reconciliation.max_concurrent_jobs if slots is None else slots
    conn = connection.get_new_connection(connection.get_connection_params())
    acquired: int | None = None
    try:
        conn.autocommit = True
        for slot in range(slots):
            row = conn.execute(
                "SELECT pg_try_advisory_lock(%s, %s)", (JOB_SLOT_LOCK_KEY, slot)
            ).fetchone()
            if row and row[0]:
                acquired = slot
                break
        yield acquired
    finally:
        try:
            if acquired is not None and not conn.closed:
                # Released now, not when the server notices the session ended.
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", (JOB_SLOT_LOCK_KEY, acquired))
        except Exception:  # the session is gone: so is its lock
            logger.debug("Could not unlock job slot %s", acquired, exc_info=True)
        finally:
            conn.close()


def slot_wait_seconds() -> int:
    """How long a job waits before asking for a slot again: well inside the heartbeat timeout."""
    return max(1, min(5, settings.reconciliation.heartbeat_timeout_seconds // 4))


class Heartbeat:
    """Touch a job every ``interval`` seconds from a background thread while it runs."""

    def __init__(self, job_id: Any, interval: float | None = None) -> None:
        self.job_id = job_id
        self.interval = interval or max(1.0, settings.reconciliation.heartbeat_timeout_seconds / 3)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{job_id}", daemon=True)

    def _beat(self) -> None:
        from django.db import connection as thread_connection

        try:
            while not self._stop.wait(self.interval):
                try:
                    ReconciliationJob(pk=self.job_id).touch()
                except Exception:  # a missed beat is not worth killing the job for
                    logger.warning("Heartbeat for job %s failed", self.job_id, exc_info=True)
                    thread_connection.close()  # a dead connection: the next beat opens anew
        finally:
            thread_connection.close()  # this thread's own Django connection

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def execute_job(job_id: str | uuid.UUID) -> str:
    """Run one job if a slot is free; the job's final status, NO_SLOT or MISSING.

    Whatever happens inside, the job does not stay RUNNING once this returns (except
    when it returns NO_SLOT: then the job is still waiting for its turn).
    """
    ensure_app_database()  # a PostgreSQL restart since the last task left a dead connection
    job = ReconciliationJob.objects.filter(pk=job_id).first()
    if job is None:
        logger.warning("Job %s does not exist (deleted, or queued by another database)", job_id)
        return MISSING
    if job.status != JobStatus.RUNNING:
        logger.info("Job %s is already %s; nothing to do", job_id, job.status)
        return str(job.status)

    limit = settings.reconciliation.job_time_limit_seconds
    with job_slot() as slot:
        if slot is None:
            waited = (timezone.now() - job.started_at).total_seconds()
            if waited > limit:
                job.mark_failed(
                    f"Waited {waited:.0f} s for one of the "
                    f"{settings.reconciliation.max_concurrent_jobs} job slots "
                    f"(RECONCILIATION_MAX_CONCURRENT_JOBS); gave up after the job time limit "
                    f"of {limit} s."
                )
                return str(job.status)
            if job.phase != JobPhase.QUEUED:  # redelivered after its worker died
                job.enter_phase(JobPhase.QUEUED)
            job.touch()
            logger.info("Job %s (%s) waits for a free job slot", job_id, job.table_name)
            return NO_SLOT

        logger.info("Job %s (%s) runs in slot %s", job_id, job.table_name, slot)
        from reconciliation.jobs import record_failure, run_job

        with Heartbeat(job.pk):
            try:
                run_job(job)
            except SoftTimeLimitExceeded:
                record_failure(
                    job,
                    f"Stopped: the job time limit of {limit} s "
                    "(RECONCILIATION_JOB_TIME_LIMIT_SECONDS) was exceeded.",
                )
            except Exception as exc:  # run_job should record its own failures; a safety net
                logger.exception("Job %s raised", job_id)
                record_failure(job, f"The job failed unexpectedly: {type(exc).__name__}: {exc}")
        ensure_app_database()
        job.refresh_from_db(fields=["status"])
        if job.status == JobStatus.RUNNING:
            record_failure(job, "The job runner returned without finishing the job.")
        return str(job.status)


@shared_task(
    bind=True,
    name="reconciliation.run_job",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    soft_time_limit=settings.reconciliation.job_time_limit_seconds,
    time_limit=settings.reconciliation.job_time_limit_seconds + 60,
)
def run_reconciliation_job(self: Any, job_id: str) -> str:
    """Run one reconciliation job (retrying later while every job slot is taken)."""
    outcome = execute_job(job_id)
    if outcome == NO_SLOT:
        raise self.retry(countdown=slot_wait_seconds())
    return outcome


def enqueue_job(job: ReconciliationJob) -> None:
    """Queue ``job`` for a worker once the current transaction commits.

    If the broker cannot take the message, the job is marked FAILED at once rather than
    left RUNNING for the reaper.
    """
    job_id = str(job.pk)

    def send() -> None:
        try:
            run_reconciliation_job.apply_async(
                args=[job_id],
                retry=True,
                retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
            )
        except Exception as exc:
            logger.exception("Could not queue job %s", job_id)
            stuck = ReconciliationJob.objects.filter(pk=job_id).first()
            if stuck is not None:
                stuck.mark_failed(f"Could not queue the job: the Celery broker failed: {exc}")

    transaction.on_commit(send)


@shared_task(name="reconciliation.run_scheduled_reconciliation", acks_late=True)
def run_scheduled_reconciliation() -> list[str]:
    """Beat's periodic task: one HOURLY_SCHEDULED job per enabled table."""
    from reconciliation.schedule import enqueue_scheduled_jobs

    return [str(job.pk) for job in enqueue_scheduled_jobs()]


@shared_task(name="reconciliation.reap_stalled_jobs", acks_late=True)
def reap_stalled_jobs() -> list[str]:
    """Beat's periodic task: fail RUNNING jobs whose heartbeat stopped."""
    from reconciliation.schedule import reap_stalled_jobs as reap

    return [str(job.pk) for job in reap()]
