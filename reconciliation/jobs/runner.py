"""Running a job: its coordinator, in a Celery worker or in this process.

One code path runs every job (``coordinate``), whether a worker took it from the queue
(``execute_job``, the task's body: with a job slot and a heartbeat) or ``manage.py
reconcile`` runs it here (``run_in_process``):

1. resolve the table and build the engine;
2. a SAMPLE runs whole, here; any other strategy is planned into segments
   (``segments.plan_job``, once: a redelivered or resumed job keeps the ones it has);
3. for each kind of segment in turn (staging, then comparing) the coordinator sends PENDING
   segments to the workers (within the job's in-flight cap) and runs segments itself: the
   next PENDING one, or one a busy worker has not taken yet, or one whose process died.  In
   process nothing is sent and it simply runs them all;
4. once all are DONE, ``finalizer.finalize`` re-checks, writes the ledger and completes.

A worker that finishes a segment also keeps the job going: it puts dead processes' segments
back in line and, if the job's coordinator is gone (no process holds its run lock: its whole
worker was SIGKILLed and its message waits for the broker's visibility timeout), queues the
coordinator again.

Whatever goes wrong, the job ends FAILED with a message that names the store
(``failures.py``), never RUNNING; its DONE segments stay DONE, so ``resume_job`` redoes only
the rest.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable

from celery.exceptions import SoftTimeLimitExceeded
from django.db import Error as DjangoDatabaseError
from django.db import IntegrityError, transaction
from django.utils import timezone

from cdcrecon.conf import settings
from reconciliation.choices import JobPhase, JobStatus, SegmentKind, SegmentStatus
from reconciliation.connections import ensure_app_database
from reconciliation.engine import RECHECK_PROGRESS, Engine
from reconciliation.jobs import segments
from reconciliation.jobs.after import queue_after_job
from reconciliation.jobs.create import JobAlreadyRunning, engine_options
from reconciliation.jobs.failures import describe_failure, record_failure
from reconciliation.jobs.finalizer import MismatchWriter, Touch, finalize
from reconciliation.jobs.queue import enqueue_job
from reconciliation.jobs.slots import Heartbeat, job_run_lock, job_slot
from reconciliation.ledger.reads import engine_for
from reconciliation.models import JobSegment, ReconciliationJob
from reconciliation.registry import get_mapping

logger = logging.getLogger(__name__)

# What execute_job reports back to the task.
NO_SLOT = "NO_SLOT"
MISSING = "MISSING"
BUSY = "BUSY"  # another process coordinates this job

# How often a coordinator with nothing to run looks again at its job's segments.
WAIT_SECONDS = 0.25

#: ``on_progress(fraction, segments done, segments total)``
OnProgress = Callable[[float, int, int], None]


class JobStopped(Exception):
    """The job left RUNNING while its coordinator worked (failed elsewhere, or reaped)."""


class JobNotResumable(Exception):
    """Only a FAILED job can be resumed."""


def coordinate(
    job: ReconciliationJob, *, dispatch: bool, on_progress: OnProgress | None = None
) -> ReconciliationJob:
    """Run a RUNNING job to its end here: COMPLETED, or FAILED with a message.  Only
    non-``Exception`` errors (a KeyboardInterrupt, SystemExit) are raised again, after the
    job is marked FAILED."""
    if job.status != JobStatus.RUNNING:
        return job
    writer = MismatchWriter(job)
    progress = _Progress(job, on_progress)
    try:
        ensure_app_database()
        job.enter_phase(JobPhase.READING)
        mapping = get_mapping(job.table_name)
        # engine_for probes the Cassandra session (rebuilt once if broken) before the first
        # read; transient errors are then retried per statement (per token range or page).
        engine = engine_for(
            mapping, engine_options(job, mapping), writer, Touch(job, progress.fraction)
        )
        if not segments.is_segmented(job):
            outcome = engine.run(job.validation_strategy)
            finalize(job, mapping, engine, writer, outcome)
            return job
        segments.plan_job(job, engine)
        for kind in segments.kinds(job):
            _work_through(job, kind, engine, dispatch, progress)
        finalize(job, mapping, engine, writer)
    except BaseException as exc:
        if not isinstance(exc, JobStopped):
            record_failure(job, describe_failure(exc))
        with contextlib.suppress(DjangoDatabaseError):  # the app database may still be down
            job.refresh_from_db()
        if not isinstance(exc, Exception):
            raise
    return job


def _work_through(
    job: ReconciliationJob, kind: str, engine: Engine, dispatch: bool, progress: _Progress
) -> None:
    """Run segments of ``kind`` here and send others out, until every one is DONE."""
    while True:
        if dispatch:
            segments.dispatch(job, kind)
        with segments.claim_next(job, kind) as segment:
            if segment is not None:
                segments.run_claimed(segment, engine)
        if not segments.job_is_running(job):
            raise JobStopped()
        progress.segments()
        if segment is None:
            if not segments.unfinished(job, kind):
                return
            time.sleep(WAIT_SECONDS)  # the rest are running elsewhere


class _Progress:
    """The job's progress: segments DONE (up to the re-check's start), then the engine's."""

    def __init__(self, job: ReconciliationJob, also: OnProgress | None) -> None:
        self.job = job
        self.also = also
        self.done = self.total = 0
        self.last = 0.0

    def segments(self) -> None:
        counts = self.job.segments.values_list("kind", "status")
        total = done = compared = compares = 0
        for kind, status in counts:
            total += 1
            done += status == SegmentStatus.DONE
            if kind == SegmentKind.COMPARE:
                compares += 1
                compared += status == SegmentStatus.DONE
        self.done, self.total = compared, compares
        fraction = RECHECK_PROGRESS * done / total if total else 0.0
        if self.also is not None:
            self.also(fraction, compared, compares)
        now = time.monotonic()
        if now - self.last >= 1.0 or done == total:
            self.last = now
            self.job.touch(fraction)

    def fraction(self, fraction: float) -> None:
        if self.also is not None:
            self.also(fraction, self.done, self.total)


# -- the task's body ------------------------------------------------------------------------------


def execute_job(job_id: str | uuid.UUID, queue: str = "") -> str:
    """Coordinate one job if a slot is free; the job's final status, NO_SLOT, BUSY or
    MISSING.  ``queue`` is where the job's message came from (its segments go there too).

    Whatever happens inside, the job does not stay RUNNING once this returns (except for
    NO_SLOT, still waiting for its turn, and BUSY, coordinated by another process).
    """
    ensure_app_database()  # a PostgreSQL restart since the last task left a dead connection
    job = ReconciliationJob.objects.filter(pk=job_id).first()
    if job is None:
        logger.warning("Job %s does not exist (deleted, or queued by another database)", job_id)
        return MISSING
    if job.status != JobStatus.RUNNING:
        logger.info("Job %s is already %s; nothing to do", job_id, job.status)
        return str(job.status)
    if queue and job.queue != queue:
        ReconciliationJob.objects.filter(pk=job.pk).update(queue=queue)
        job.queue = queue

    limit = settings.reconciliation.job_time_limit_seconds
    with job_run_lock(job.pk) as mine:
        if not mine:
            logger.info("Job %s is coordinated by another process", job_id)
            return BUSY
        with job_slot() as slot:
            if slot is None:
                waited = (timezone.now() - job.started_at).total_seconds()
                if waited > limit:
                    job.mark_failed(
                        f"Waited {waited:.0f} s for one of the "
                        f"{settings.reconciliation.max_concurrent_jobs} job slots "
                        f"(RECONCILIATION_MAX_CONCURRENT_JOBS); gave up after the job time "
                        f"limit of {limit} s."
                    )
                    return str(job.status)
                if job.phase != JobPhase.QUEUED:  # redelivered after its worker died
                    job.enter_phase(JobPhase.QUEUED)
                job.touch()
                logger.info("Job %s (%s) waits for a free job slot", job_id, job.table_name)
                return NO_SLOT

            logger.info("Job %s (%s) runs in slot %s", job_id, job.table_name, slot)
            with Heartbeat(job.pk):
                try:
                    coordinate(job, dispatch=True)
                except SoftTimeLimitExceeded:
                    record_failure(
                        job,
                        f"Stopped: the job time limit of {limit} s "
                        "(RECONCILIATION_JOB_TIME_LIMIT_SECONDS) was exceeded.",
                    )
                except Exception as exc:  # coordinate records its own failures; a safety net
                    logger.exception("Job %s raised", job_id)
                    record_failure(job, f"The job failed unexpectedly: {type(exc).__name__}: {exc}")
            ensure_app_database()
            job.refresh_from_db(fields=["status", "in_flight_count", "keys_examined", "queue"])
            if job.status == JobStatus.RUNNING:
                record_failure(job, "The job runner returned without finishing the job.")
            else:
                queue_after_job(job)
            return str(job.status)


def execute_segment(segment_id: int) -> str:
    """Run one segment sent to this worker (the segment task's body); its status after."""
    ensure_app_database()
    segment = JobSegment.objects.select_related("job").filter(pk=segment_id).first()
    if segment is None:
        return MISSING
    job = segment.job
    if job.status != JobStatus.RUNNING or segment.status == SegmentStatus.DONE:
        return str(segment.status)
    with segments.claimed(segment_id) as mine:
        if mine is None:
            return BUSY
        try:
            engine = _engine_for_segments(job)
            segments.run_claimed(mine, engine)
        except Exception as exc:
            logger.exception("Segment %s of job %s failed", segment_id, job.pk)
            record_failure(job, describe_failure(exc))
            return SegmentStatus.PENDING
    if segments.job_is_running(job):
        # The workers keep the job going even when its coordinator died with its message
        # stuck in the broker (its whole worker SIGKILLed): dead segments go back in line,
        # and a coordinator that holds no run lock is queued again.
        segments.revive_dead(job)
        segments.dispatch(job, mine.kind)
        with job_run_lock(job.pk) as nobody_coordinates:
            if nobody_coordinates:
                logger.warning("Job %s has no live coordinator: queueing it again", job.pk)
                enqueue_job(job)
    return SegmentStatus.DONE


_engines: dict[uuid.UUID, Engine] = {}


def _engine_for_segments(job: ReconciliationJob) -> Engine:
    """An engine for ``job``'s segments, kept for the next one in this process."""
    engine = _engines.get(job.pk)
    if engine is None:
        _engines.clear()  # one job at a time per process
        mapping = get_mapping(job.table_name)
        engine = engine_for(mapping, engine_options(job, mapping))
        _engines[job.pk] = engine
    return engine


# -- in this process, and resuming ---------------------------------------------------------------


def run_in_process(
    job: ReconciliationJob, *, on_progress: OnProgress | None = None
) -> ReconciliationJob:
    """Run a RUNNING job here, every segment in turn (``manage.py reconcile``, tests): the
    same code the workers run, nothing sent to them.  A job another process coordinates is
    returned as it is."""
    with job_run_lock(job.pk) as mine:
        if not mine:
            return job
        return coordinate(job, dispatch=False, on_progress=on_progress)


def resume_job(job: ReconciliationJob, requested_by: object = None) -> ReconciliationJob:
    """Run a FAILED job again from where it stopped: its unfinished segments are PENDING
    again, DONE ones keep their results; the job is RUNNING and queued.

    JobNotResumable unless FAILED; JobAlreadyRunning if its table has a running job.
    """
    with transaction.atomic():
        current = ReconciliationJob.objects.select_for_update().get(pk=job.pk)
        if current.status != JobStatus.FAILED:
            raise JobNotResumable(
                f"Job {job.pk} is {current.status}; only a FAILED job can be resumed."
            )
        try:
            with transaction.atomic():
                ReconciliationJob.objects.filter(pk=job.pk).update(
                    status=JobStatus.RUNNING,
                    phase=JobPhase.QUEUED,
                    error_message="",
                    completed_at=None,
                    heartbeat_at=timezone.now(),
                )
        except IntegrityError:
            running = ReconciliationJob.objects.filter(
                table_name=current.table_name, status=JobStatus.RUNNING
            ).first()
            if running is None:
                raise
            raise JobAlreadyRunning(running) from None
        segments.reset_unfinished(current)
        current.refresh_from_db()
        enqueue_job(current)
    logger.info("Job %s resumed by %s", job.pk, requested_by or "the system")
    return current
