"""Sending work to the workers, by task name (``tasks.py`` only declares the tasks).

A new job's coordinator task goes to the default queue (or wherever the deployment's
routes send it); its segments, and the job itself when it is resumed, go to the queue the
coordinator's message came from (``ReconciliationJob.queue``), so a deployment that routes a
table's jobs to chosen workers keeps them there.  If the broker cannot take
a job's message, the job is marked FAILED at once rather than left RUNNING for the reaper.
"""

from __future__ import annotations

import logging

from celery import current_app
from django.db import transaction

from reconciliation.models import ReconciliationJob

logger = logging.getLogger(__name__)

RUN_JOB = "reconciliation.run_job"
RUN_SEGMENT = "reconciliation.run_segment"
RUN_SCHEDULED = "reconciliation.run_scheduled_reconciliation"
REAP_STALLED = "reconciliation.reap_stalled_jobs"
RECHECK_IN_FLIGHT = "reconciliation.recheck_in_flight"
AUTO_REPAIR = "reconciliation.auto_repair"

RETRY_POLICY = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5}


def _send(
    name: str, queue: str, args: list[object] | None = None, countdown: float | None = None
) -> None:
    """Send task ``name`` to ``queue`` (the default queue when empty), retrying the broker."""
    current_app.send_task(
        name,
        args=args,
        countdown=countdown,
        queue=queue or None,
        retry=True,
        retry_policy=RETRY_POLICY,
    )


def enqueue_job(job: ReconciliationJob) -> None:
    """Queue ``job``'s coordinator once the current transaction commits: on the default
    queue, or on the queue it came from before (a resumed job keeps its routing)."""
    job_id, queue = str(job.pk), job.queue

    def send() -> None:
        try:
            _send(RUN_JOB, queue, args=[job_id])
        except Exception as exc:
            logger.exception("Could not queue job %s", job_id)
            stuck = ReconciliationJob.objects.filter(pk=job_id).first()
            if stuck is not None:
                stuck.mark_failed(f"Could not queue the job: the Celery broker failed: {exc}")

    transaction.on_commit(send)


def send_segments(segment_ids: list[int], queue: str) -> None:
    """Queue these segments (after the current transaction commits).  A message lost here
    costs nothing: the job's coordinator runs whatever nobody else took."""

    def send() -> None:
        for segment_id in segment_ids:
            try:
                _send(RUN_SEGMENT, queue, args=[segment_id])
            except Exception:
                logger.warning("Could not queue segment %s", segment_id, exc_info=True)
                return

    transaction.on_commit(send)


def send_in_flight_recheck(countdown: float, queue: str = "") -> None:
    """Queue the re-check of in-flight differences ``countdown`` seconds from now (after the
    current transaction commits).  A message lost here costs a minute at most: beat's sweep
    runs the same task every minute."""

    def send() -> None:
        try:
            _send(RECHECK_IN_FLIGHT, queue, countdown=countdown)
        except Exception:
            logger.warning("Could not queue the in-flight re-check", exc_info=True)

    transaction.on_commit(send)


def send_auto_repair(job: ReconciliationJob) -> None:
    """Queue the table's repair policy after ``job`` (once the current transaction commits),
    on the queue the job came from.  A message lost here costs one run of the policy: the
    next conclusive job queues it again."""
    job_id, queue = str(job.pk), job.queue

    def send() -> None:
        try:
            _send(AUTO_REPAIR, queue, args=[job_id])
        except Exception:
            logger.warning("Could not queue the repair policy after job %s", job_id, exc_info=True)

    transaction.on_commit(send)
