"""A distributed job's segments: planning them, sending them out, and running one.

A CHECKSUM or TIMESTAMP_RANGE job is planned (``plan_job``) as STAGE segments (block
ranges of the target, staged by token into the job's staging table, ``staging.py``) and
COMPARE segments (token ranges of the ring, each merged with the staged target rows of its
range); a ROW_COUNT job as COMPARE segments that count their range.  Sizes come from the
tables' own estimates (``engine.plan``).

Any process may run any segment, any number of times (``run_segment``):

* it holds the segment's run lock while it works (``slots.segment_lock``): a second
  delivery of the same message finds the lock taken and does nothing, and a segment marked
  RUNNING whose lock is free belonged to a process that died, so it is taken over;
* a DONE segment is never run again (its attempts do not change);
* its results (staged records, or differences and counts) are written in one transaction
  that first deletes whatever an earlier attempt wrote and marks it DONE, only if this
  attempt still owns it: a redelivered, retried or resumed segment never duplicates a row.

``dispatch`` sends PENDING segments to the workers, at most
``RECONCILIATION_MAX_SEGMENTS_IN_FLIGHT`` of one job queued or running at once;
``revive_dead`` puts a dead process's segment back in line.
"""

from __future__ import annotations

import dataclasses
import logging
import marshal
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction
from django.db.models import Case, F, IntegerField, Value, When
from django.utils import timezone
from psycopg import sql

from cdcrecon.conf import settings
from reconciliation.choices import JobStatus, SegmentKind, SegmentStatus, ValidationStrategy
from reconciliation.engine import (
    Engine,
    checked_window,
    compare_range,
    count_range,
    plan,
    stage_records,
    window_parameters,
)
from reconciliation.engine.merge import Diff
from reconciliation.engine.schema import Window
from reconciliation.jobs import staging
from reconciliation.jobs.queue import send_segments
from reconciliation.jobs.slots import segment_lock
from reconciliation.models import JobSegment, ReconciliationJob, SegmentDifference

logger = logging.getLogger(__name__)

MIN_SEGMENTS = 4
MAX_SEGMENTS = 4096
SEGMENTED_STRATEGIES = (
    ValidationStrategy.CHECKSUM,
    ValidationStrategy.TIMESTAMP_RANGE,
    ValidationStrategy.ROW_COUNT,
)
OPEN = (SegmentStatus.PENDING, SegmentStatus.QUEUED, SegmentStatus.RUNNING)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def is_segmented(job: ReconciliationJob) -> bool:
    return job.validation_strategy in SEGMENTED_STRATEGIES


def kinds(job: ReconciliationJob) -> list[str]:
    """The kinds of segment ``job`` runs, in order: staging must be complete before the
    first comparison."""
    if job.validation_strategy == ValidationStrategy.ROW_COUNT:
        return [SegmentKind.COMPARE]
    return [SegmentKind.STAGE, SegmentKind.COMPARE]


def job_window(job: ReconciliationJob, engine: Engine) -> Window | None:
    """The window a TIMESTAMP_RANGE job checks, the same for every segment: fixed in
    ``job.parameters`` when the job is planned."""
    if job.validation_strategy != ValidationStrategy.TIMESTAMP_RANGE:
        return None
    return checked_window(engine)


# -- planning ----------------------------------------------------------------------------------


def plan_job(job: ReconciliationJob, engine: Engine) -> None:
    """Create ``job``'s segments, once: a redelivered or resumed job keeps the ones it has
    (and stages again if its staging table is gone).  Fixes a TIMESTAMP_RANGE job's window
    in its parameters and in ``engine.options``."""
    if job.validation_strategy == ValidationStrategy.TIMESTAMP_RANGE:
        window = checked_window(engine)
        job.parameters = {**(job.parameters or {}), **window_parameters(window)}
        ReconciliationJob.objects.filter(pk=job.pk).update(parameters=job.parameters)
        engine.options = dataclasses.replace(
            engine.options, window_from=window.start, window_to=window.end
        )
    stages = SegmentKind.STAGE in kinds(job)
    if job.segments.exists():
        if stages and not staging.exists(job):
            staging.create(job)
            job.segments.filter(kind=SegmentKind.STAGE).update(status=SegmentStatus.PENDING)
        return
    conf = settings.reconciliation
    layout = plan(
        engine,
        rows_per_segment=conf.segment_rows,
        min_segments=MIN_SEGMENTS,
        max_segments=MAX_SEGMENTS,
        stage=stages,
    )
    with transaction.atomic():
        if stages:
            staging.create(job)
        JobSegment.objects.bulk_create(
            [
                JobSegment(job=job, kind=SegmentKind.STAGE, number=n, range_start=a, range_end=b)
                for n, (a, b) in enumerate(layout.stage)
            ]
            + [
                JobSegment(job=job, kind=SegmentKind.COMPARE, number=n, range_start=a, range_end=b)
                for n, (a, b) in enumerate(layout.compare)
            ]
        )


# -- sending them out -----------------------------------------------------------------------------


def dispatch(job: ReconciliationJob, kind: str) -> int:
    """Queue PENDING segments of ``kind`` up to the job's in-flight cap; how many were sent."""
    cap = settings.reconciliation.max_segments_in_flight
    with transaction.atomic():
        # One dispatcher at a time per job: the count below stays true until commit.
        ReconciliationJob.objects.select_for_update().filter(pk=job.pk).first()
        segments = JobSegment.objects.filter(job=job, kind=kind)
        busy = segments.filter(status__in=(SegmentStatus.QUEUED, SegmentStatus.RUNNING)).count()
        room = cap - busy
        if room <= 0:
            return 0
        ids = list(
            segments.filter(status=SegmentStatus.PENDING)
            .order_by("number")
            .values_list("id", flat=True)[:room]
        )
        JobSegment.objects.filter(id__in=ids, status=SegmentStatus.PENDING).update(
            status=SegmentStatus.QUEUED, queued_at=timezone.now()
        )
        send_segments(ids, job.queue)
    return len(ids)


def revive_dead(job: ReconciliationJob) -> int:
    """Put back to PENDING the RUNNING segments whose process died (their run lock is free:
    a live worker holds it from before it marks the segment RUNNING until after DONE); how
    many."""
    revived = 0
    running = job.segments.filter(status=SegmentStatus.RUNNING).values_list("id", "attempts")
    for segment_id, attempts in running:
        with segment_lock(segment_id) as free:
            if free:
                revived += JobSegment.objects.filter(
                    pk=segment_id, status=SegmentStatus.RUNNING, attempts=attempts
                ).update(status=SegmentStatus.PENDING)
    return revived


def in_flight(job: ReconciliationJob) -> int:
    return JobSegment.objects.filter(
        job=job, status__in=(SegmentStatus.QUEUED, SegmentStatus.RUNNING)
    ).count()


def unfinished(job: ReconciliationJob, kind: str) -> int:
    return JobSegment.objects.filter(job=job, kind=kind).exclude(status=SegmentStatus.DONE).count()


# -- running one ------------------------------------------------------------------------------


@contextmanager
def claimed(segment_id: int) -> Iterator[JobSegment | None]:
    """Segment ``segment_id``, now RUNNING here under its run lock (one more attempt); None
    when it is DONE, or another live process holds it."""
    with segment_lock(segment_id) as mine:
        if not mine:
            yield None
            return
        now = timezone.now()
        taken = JobSegment.objects.filter(pk=segment_id, status__in=OPEN).update(
            status=SegmentStatus.RUNNING,
            attempts=F("attempts") + 1,
            worker=worker_name()[:200],
            started_at=now,
            finished_at=None,
            error_message="",
        )
        yield JobSegment.objects.select_related("job").get(pk=segment_id) if taken else None


@contextmanager
def claim_next(job: ReconciliationJob, kind: str) -> Iterator[JobSegment | None]:
    """For a coordinator: claim the next open segment of ``kind`` nobody is running (a
    PENDING one only while the job has room in flight; a QUEUED one a busy worker has not
    taken yet, or a RUNNING one whose process died, always)."""
    room = in_flight(job) < settings.reconciliation.max_segments_in_flight
    order = Case(
        When(status=SegmentStatus.RUNNING, then=Value(0)),
        When(status=SegmentStatus.PENDING, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    candidates = JobSegment.objects.filter(job=job, kind=kind, status__in=OPEN)
    if not room:
        candidates = candidates.exclude(status=SegmentStatus.PENDING)
    for segment_id in candidates.order_by(order, "number").values_list("id", flat=True):
        with claimed(segment_id) as segment:
            if segment is not None:
                yield segment
                return
    yield None


def run_claimed(segment: JobSegment, engine: Engine) -> bool:
    """Run a segment claimed here and record its results; False when this attempt no longer
    owned it by the time it finished (a resume reset it): nothing is written then."""
    job = segment.job
    window = job_window(job, engine)
    try:
        if segment.kind == SegmentKind.STAGE:
            return _stage(segment, engine, window)
        if job.validation_strategy == ValidationStrategy.ROW_COUNT:
            return _count(segment, engine)
        return _compare(segment, engine, window)
    except BaseException as exc:
        JobSegment.objects.filter(
            pk=segment.pk, status=SegmentStatus.RUNNING, attempts=segment.attempts
        ).update(status=SegmentStatus.PENDING, error_message=f"{type(exc).__name__}: {exc}"[:2000])
        raise


def _end(segment: JobSegment) -> int:
    assert segment.range_end is not None
    return segment.range_end


@contextmanager
def _recording(segment: JobSegment) -> Iterator[bool]:
    """A transaction for a segment's results, with its row locked: does this attempt still
    own it?  (Only then may it write; a resume may have reset it meanwhile.)"""
    with transaction.atomic():
        # Only the segment's row: a lock on the job's row would make every other worker's
        # segment (and the job's heartbeat) wait for this transaction.
        current = (
            JobSegment.objects.select_for_update(of=("self",))
            .filter(pk=segment.pk)
            .order_by()
            .values_list("status", "attempts")
            .first()
        )
        yield current == (SegmentStatus.RUNNING, segment.attempts)


def _done(segment: JobSegment, **counts: int) -> bool:
    JobSegment.objects.filter(pk=segment.pk).update(
        status=SegmentStatus.DONE, finished_at=timezone.now(), **counts
    )
    return True


def _count(segment: JobSegment, engine: Engine) -> bool:
    rows = count_range(engine, (segment.range_start, _end(segment)))
    with _recording(segment) as mine:
        return mine and _done(segment, cassandra_rows=rows, keys=rows)


def _stage(segment: JobSegment, engine: Engine, window: Window | None) -> bool:
    ends = [
        end
        for end in JobSegment.objects.filter(job=segment.job, kind=SegmentKind.COMPARE)
        .order_by("number")
        .values_list("range_end", flat=True)
        if end is not None
    ]
    records = stage_records(engine, (segment.range_start, segment.range_end), window)
    with _recording(segment) as mine:
        if not mine:
            return False
        rows = staging.write_chunk(segment.job, segment.number, records, ends)
        return _done(segment, postgres_rows=rows)


def _compare(segment: JobSegment, engine: Engine, window: Window | None) -> bool:
    staged = staging.read_range(segment.job, segment.number)
    result = compare_range(engine, (segment.range_start, _end(segment)), window, iter(staged))
    del staged
    with result.differences as differences, _recording(segment) as mine:
        if not mine:
            return False
        SegmentDifference.objects.filter(segment=segment).delete()
        _write_differences(segment, differences.records())
        return _done(
            segment,
            cassandra_rows=result.counts.cassandra_rows,
            postgres_rows=result.counts.postgres_rows,
            keys=result.counts.keys,
            difference_count=differences.count,
        )


def _write_differences(segment: JobSegment, differences: Iterator[Diff]) -> None:
    table = sql.Identifier(SegmentDifference._meta.db_table)
    statement = sql.SQL(
        "COPY {} (segment_id, key, cassandra_row, target_rows, source_write_time, "
        "source_expires_at) FROM STDIN (FORMAT BINARY)"
    ).format(table)
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types(["int8", "bytea", "bytea", "bytea", "int8", "float8"])
        for key, c_row, target_hashes, written in differences:
            write_time, expires = (None, None) if written is None else written
            copy.write_row(
                (segment.pk, key, c_row, marshal.dumps(tuple(target_hashes)), write_time, expires)
            )


def job_differences(job: ReconciliationJob, batch: int = 2000) -> Iterator[Diff]:
    """Every difference the job's COMPARE segments found: ``(key, source row or None,
    (target row hashes...), source write or None)``, read a batch at a time."""
    last = 0
    rows = SegmentDifference.objects.filter(segment__job=job).order_by("id")
    columns = ("id", "key", "cassandra_row", "target_rows", "source_write_time")
    while page := list(rows.filter(id__gt=last).values_list(*columns, "source_expires_at")[:batch]):
        last = page[-1][0]
        for _, key, c_row, target_rows, write_time, expires in page:
            yield (
                bytes(key),
                None if c_row is None else bytes(c_row),
                marshal.loads(bytes(target_rows)),
                None if write_time is None else (write_time, expires),
            )


def reset_unfinished(job: ReconciliationJob) -> int:
    """Put every segment not DONE back to PENDING (a resume); DONE ones keep their results,
    and every one its attempts (and the last error, until it runs again)."""
    return job.segments.exclude(status=SegmentStatus.DONE).update(
        status=SegmentStatus.PENDING, queued_at=None, started_at=None, worker=""
    )


def job_is_running(job: ReconciliationJob) -> bool:
    return ReconciliationJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING).exists()
