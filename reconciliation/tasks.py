"""The Celery tasks: a thin shell over ``reconciliation.jobs`` (the API, beat and the admin
only enqueue; ``jobs.queue`` sends these by name).

* ``reconciliation.run_job``: a job's coordinator.  While every job slot is taken it retries
  a few seconds later (``jobs.slots``).
* ``reconciliation.run_segment``: one segment of a job, on whichever worker takes it.
* ``reconciliation.auto_repair``: a table's repair policy, sent after each conclusive job
  of a table whose policy is not off (``autorepair``).
* ``reconciliation.run_scheduled_reconciliation``, ``reconciliation.reap_stalled_jobs`` and
  ``reconciliation.recheck_in_flight`` (also sent with a countdown when a job ends with
  differences in flight): beat's periodic tasks.

All acknowledge late and are redelivered if their worker process dies (settings:
``CELERY_TASK_ACKS_LATE``, ``CELERY_TASK_REJECT_ON_WORKER_LOST``); when the whole worker
dies, the broker gives the task to another worker after ``CELERY_VISIBILITY_TIMEOUT_SECONDS``
(default 300).  Running any of them twice is harmless (``jobs.slots``: run locks; a repair
run resumes, or waits while another delivery of it is alive: ``repair.runs``).
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from cdcrecon.conf import settings
from reconciliation.connections import ensure_app_database
from reconciliation.jobs import execute_job, execute_segment, queue, schedule
from reconciliation.jobs.runner import NO_SLOT
from reconciliation.jobs.slots import slot_wait_seconds
from reconciliation.ledger import inflight
from reconciliation.repair import policy as autorepair
from reconciliation.repair import runs as repair_runs


@shared_task(
    bind=True,
    name=queue.RUN_JOB,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    soft_time_limit=settings.reconciliation.job_time_limit_seconds,
    time_limit=settings.reconciliation.job_time_limit_seconds + 60,
)
def run_reconciliation_job(self: Any, job_id: str) -> str:
    """Coordinate one reconciliation job (retrying later while every job slot is taken)."""
    routing = (self.request.delivery_info or {}).get("routing_key") or ""
    outcome = execute_job(job_id, queue=routing)
    if outcome == NO_SLOT:
        raise self.retry(countdown=slot_wait_seconds())
    return outcome


@shared_task(
    name=queue.RUN_SEGMENT,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.reconciliation.job_time_limit_seconds,
    time_limit=settings.reconciliation.job_time_limit_seconds + 60,
)
def run_segment(segment_id: int) -> str:
    """Run one segment of a job."""
    return execute_segment(segment_id)


@shared_task(
    bind=True,
    name=queue.AUTO_REPAIR,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    soft_time_limit=settings.reconciliation.job_time_limit_seconds,
    time_limit=settings.reconciliation.job_time_limit_seconds + 60,
)
def auto_repair(self: Any, job_id: str) -> dict[str, object] | None:
    """Run (or resume) the table's repair policy after job ``job_id``; its summary.  While
    another delivery of this run holds the table's lock, try again a little later."""
    ensure_app_database()  # a PostgreSQL restart since the last task left a dead connection
    try:
        return autorepair.run_policy(job_id)
    except repair_runs.ResumeLater as exc:
        raise self.retry(countdown=exc.seconds) from None


@shared_task(name=queue.RUN_SCHEDULED, acks_late=True)
def run_scheduled_reconciliation() -> list[str]:
    """Beat's periodic task: one HOURLY_SCHEDULED job per enabled table."""
    return [str(job.pk) for job in schedule.enqueue_scheduled_jobs()]


@shared_task(name=queue.REAP_STALLED, acks_late=True)
def reap_stalled_jobs() -> list[str]:
    """Beat's periodic task: fail RUNNING jobs whose heartbeat stopped, close the lost
    attempts of interrupted repair runs as ABANDONED (and drop the staging tables no job
    will read again)."""
    reaped = [str(job.pk) for job in schedule.reap_stalled_jobs()]
    repair_runs.sweep_interrupted()
    schedule.drop_stale_staging()
    return reaped


@shared_task(name=queue.RECHECK_IN_FLIGHT, acks_late=True)
def recheck_in_flight() -> dict[str, int]:
    """Settle the in-flight differences whose CDC lag budget has passed."""
    settled = inflight.recheck_due()
    return {
        "healed": settled.healed,
        "drift": settled.drift,
        "expired": settled.expired,
        "in_flight": settled.in_flight,
    }
