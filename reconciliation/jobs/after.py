"""What follows a completed job, defined once for the workers and for ``manage.py reconcile``.

Two steps, in this order:

1. the re-check of the differences it found *in flight* (``ledger.inflight``), once the last
   of them comes due;
2. the table's repair policy (``repair.policy``), when it is not off.

On a worker (``queue_after_job``) both are sent to the broker: the re-check with a countdown
(beat's minutely sweep is its safety net), the policy at once.  In this process
(``run_after_job``) both run here, so ``manage.py reconcile`` leaves nothing in flight.
"""

from __future__ import annotations

from collections.abc import Callable

from django.utils import timezone

from reconciliation.choices import JobStatus
from reconciliation.jobs.queue import send_auto_repair, send_in_flight_recheck
from reconciliation.ledger.inflight import next_due, settle_job
from reconciliation.models import ReconciliationJob
from reconciliation.repair.policy import run_policy, should_run

#: ``on_wait(differences in flight, seconds until the last is due)``
OnWait = Callable[[int, float], None]


def seconds_until_due(job: ReconciliationJob) -> float | None:
    """Seconds until the last of ``job``'s in-flight differences is due (None: none)."""
    when = next_due(job)
    return None if when is None else max(0.0, (when - timezone.now()).total_seconds())


def queue_after_job(job: ReconciliationJob) -> None:
    """A worker's job completed: send its in-flight re-check and its table's policy."""
    if job.status != JobStatus.COMPLETED:
        return
    if job.in_flight_count:
        wait = seconds_until_due(job)
        if wait is not None:
            send_in_flight_recheck(wait, job.queue)
    if should_run(job):
        send_auto_repair(job)


def run_after_job(
    job: ReconciliationJob, *, wait_in_flight: bool = True, on_wait: OnWait | None = None
) -> None:
    """A job completed in this process: settle its in-flight differences here (unless
    ``wait_in_flight`` is False: the workers' re-check settles them), then run its table's
    repair policy here.  ``job`` is refreshed after each step."""
    if job.status != JobStatus.COMPLETED:
        return
    if job.in_flight_count and wait_in_flight:
        if on_wait is not None:
            on_wait(job.in_flight_count, seconds_until_due(job) or 0.0)
        settle_job(job)
        job.refresh_from_db()
    if run_policy(job.pk) is not None:
        job.refresh_from_db()
