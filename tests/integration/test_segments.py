"""Jobs split into token-range segments (issue 13): the plan, the strategies through it,
idempotent segments, the per-job cap on segments in flight, one result whichever path runs
the segments.

The Celery tests use real worker processes on the test database, so everything they must
see is committed: ``transaction=True``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cassandra.concurrent import execute_concurrent_with_args
from django.db.models import Q
from django.test import override_settings

from cdcrecon.conf import settings
from reconciliation.choices import (
    JobStatus,
    MismatchType,
    SegmentKind,
    SegmentStatus,
    ValidationStrategy,
)
from reconciliation.jobs import (
    build_parameters,
    create_job,
    engine_options,
    execute_segment,
    run_in_process,
)
from reconciliation.jobs.segments import claimed, plan_job, run_claimed
from reconciliation.ledger.reads import engine_for
from reconciliation.models import JobFinding, Mismatch, ReconciliationJob
from reconciliation.models.segments import JobSegment, SegmentDifference
from tests.conftest import TEST_QUEUE
from tests.support import REPO, celery_worker_command, child_env, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

MIN_TOKEN, MAX_TOKEN = -(2**63), 2**63 - 1
COLUMNS = "id text PRIMARY KEY, email text"
TIMED_CASSANDRA = "id text PRIMARY KEY, email text, score int, updated_at timestamp"
TIMED_POSTGRES = "id text PRIMARY KEY, email text, score int, updated_at timestamptz"
NOW = dt.datetime(2025, 11, 25, 10, 0, tzinfo=dt.UTC)


def segment_settings(**changes: Any) -> override_settings:
    """This process's reconciliation settings with ``changes`` (segment_rows, ...)."""
    return override_settings(RECONCILIATION=dataclasses.replace(settings.reconciliation, **changes))


@pytest.fixture
def users(cassandra, target, table_pair) -> Callable[..., Any]:
    """``users(rows, only_cassandra=(), only_postgres=(), changed=())``: a table pair with
    ``rows`` equal rows ("user-000000"...) and the given differences planted; the target is
    ANALYZEd so its row estimate is right.  Returns (mapping, {key: mismatch type})."""

    def make(
        rows: int,
        only_cassandra: tuple[str, ...] = (),
        only_postgres: tuple[str, ...] = (),
        changed: tuple[str, ...] = (),
    ) -> tuple[Any, dict[str, str]]:
        mapping = table_pair(COLUMNS, COLUMNS)
        same = [(f"user-{i:06d}", f"u{i}@example.com") for i in range(rows)]
        insert = cassandra.prepare(f"INSERT INTO {mapping.name} (id, email) VALUES (?, ?)")
        source = same + [(key, f"{key}@c") for key in only_cassandra]
        execute_concurrent_with_args(cassandra, insert, source, raise_on_first_error=True)
        with target.cursor() as cursor:
            with cursor.copy(f"COPY public.{mapping.name} (id, email) FROM STDIN") as copy:
                for key, email in same:
                    copy.write_row((key, f"changed-{email}" if key in changed else email))
                for key in only_postgres:
                    copy.write_row((key, f"{key}@p"))
        target.execute(f"ANALYZE public.{mapping.name}")
        expected = {key: MismatchType.MISSING_IN_POSTGRES.value for key in only_cassandra}
        expected |= {key: MismatchType.MISSING_IN_CASSANDRA.value for key in only_postgres}
        expected |= {key: MismatchType.DATA_MISMATCH.value for key in changed}
        return mapping, expected

    return make


#: Three differences of each type, spread over the keys of a table of 600 rows.
PLANTED = {
    "only_cassandra": ("only-c-1", "only-c-2", "only-c-3"),
    "only_postgres": ("only-p-1", "only-p-2", "only-p-3"),
    "changed": ("user-000007", "user-000300", "user-000599"),
}


def run(mapping: Any, strategy: str = ValidationStrategy.CHECKSUM, **options: Any):
    job = create_job(mapping, strategy, parameters=build_parameters(strategy, **options))
    run_in_process(job)
    job.refresh_from_db()
    return job


def found(job: ReconciliationJob) -> dict[str, str]:
    """What ``job`` found: key -> the type it saw (its JobFinding rows, one per key)."""
    rows = list(
        JobFinding.objects.filter(job=job).values_list(
            "mismatch__primary_key_value", "mismatch_type"
        )
    )
    assert len(rows) == len({key for key, _ in rows}), rows
    return dict(rows)


def segments(job: ReconciliationJob, kind: str) -> list[JobSegment]:
    return list(JobSegment.objects.filter(job=job, kind=kind).order_by("number"))


# -- the plan --------------------------------------------------------------------------------


def test_the_compare_segments_cover_the_ring_exactly_once(users) -> None:
    mapping, expected = users(600, **PLANTED)

    with segment_settings(segment_rows=50):
        job = run(mapping)

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert found(job) == expected
    compare = segments(job, SegmentKind.COMPARE)
    # Sized from the table (~603 rows / 50), within the clamp.
    assert 8 <= len(compare) <= 4096, len(compare)
    assert [s.number for s in compare] == list(range(len(compare)))
    # (start, end] ranges, each starting where the previous ended, from the ring's minimum
    # token to its maximum: every token in exactly one segment.
    assert compare[0].range_start == MIN_TOKEN
    assert compare[-1].range_end == MAX_TOKEN
    for before, after in zip(compare, compare[1:], strict=False):
        assert before.range_start < before.range_end == after.range_start, (before, after)
    # Each row was read by exactly one segment.
    assert sum(s.cassandra_rows for s in compare) == job.cassandra_row_count == 603
    assert sum(s.difference_count for s in compare) == len(expected)
    assert all(s.status == SegmentStatus.DONE and s.attempts == 1 for s in compare)
    # The target is staged in contiguous block ranges, the last one open-ended.
    stage = segments(job, SegmentKind.STAGE)
    assert stage, "a CHECKSUM job stages the target"
    assert stage[0].range_start == 0
    assert stage[-1].range_end is None
    for before, after in zip(stage, stage[1:], strict=False):
        assert before.range_end == after.range_start, (before, after)
    assert sum(s.postgres_rows for s in stage) == job.postgres_row_count == 603


def test_a_small_table_gets_the_minimum_of_four_segments(users) -> None:
    mapping, _ = users(30)

    with segment_settings(segment_rows=1_000_000):
        job = run(mapping)

    assert job.status == JobStatus.COMPLETED, job.error_message
    compare = segments(job, SegmentKind.COMPARE)
    assert len(compare) == 4
    assert (compare[0].range_start, compare[-1].range_end) == (MIN_TOKEN, MAX_TOKEN)
    assert sum(s.cassandra_rows for s in compare) == 30


def test_a_large_estimate_is_clamped_to_4096_segments(users) -> None:
    mapping, _ = users(5000)
    job = create_job(mapping, ValidationStrategy.CHECKSUM)

    with segment_settings(segment_rows=1):  # 5000 rows of 1 a segment: more than 4096
        plan_job(job, engine_for(mapping, engine_options(job)))

    compare = segments(job, SegmentKind.COMPARE)
    assert len(compare) == 4096
    assert (compare[0].range_start, compare[-1].range_end) == (MIN_TOKEN, MAX_TOKEN)
    for before, after in zip(compare, compare[1:], strict=False):
        assert before.range_start < before.range_end == after.range_start
    assert all(s.status == SegmentStatus.PENDING for s in compare)


# -- the strategies through segments ---------------------------------------------------------


def test_row_count_counts_each_token_range_and_gives_the_same_result_as_before(
    users, cassandra
) -> None:
    mapping, _ = users(300)
    for i in range(300, 315):  # 15 rows only in Cassandra
        cassandra.execute(
            f"INSERT INTO {mapping.name} (id, email) VALUES (%s, %s)", (f"user-{i:06d}", "x")
        )

    with segment_settings(segment_rows=40):
        job = run(mapping, ValidationStrategy.ROW_COUNT)

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert (job.cassandra_row_count, job.postgres_row_count) == (315, 300)
    assert job.mismatch_count == 15
    assert job.drift_percentage == pytest.approx(100 * 15 / 315)
    assert not Mismatch.objects.filter(job=job).exists()  # counts only, no row mismatches
    compare = segments(job, SegmentKind.COMPARE)
    assert len(compare) >= 4
    assert not segments(job, SegmentKind.STAGE)  # nothing to stage for a count
    assert sum(s.cassandra_rows for s in compare) == 315


def test_timestamp_range_through_segments_compares_only_the_window(
    cassandra, target, table_pair
) -> None:
    mapping = table_pair(TIMED_CASSANDRA, TIMED_POSTGRES)
    table = mapping.name
    old = NOW - dt.timedelta(days=3)
    inside = NOW - dt.timedelta(minutes=10)

    def both(row: tuple[Any, ...]) -> None:
        cassandra_row(row)
        postgres_row(row)

    def cassandra_row(row: tuple[Any, ...]) -> None:
        cassandra.execute(
            f"INSERT INTO {table} (id, email, score, updated_at) VALUES (%s, %s, %s, %s)", row
        )

    def postgres_row(row: tuple[Any, ...]) -> None:
        target.execute(
            f"INSERT INTO public.{table} (id, email, score, updated_at) VALUES (%s, %s, %s, %s)",
            row,
        )

    for i in range(100):  # equal rows on both sides, half of them in the window
        both((f"same-{i}", "s", i, inside if i % 2 else old))
    cassandra_row(("old-diff", "a", 1, old))  # different but outside the window: not examined
    postgres_row(("old-diff", "z", 1, old))
    cassandra_row(("lagging", "new", 1, inside))  # updated in the window on Cassandra only
    postgres_row(("lagging", "old", 1, old))
    cassandra_row(("new-missing", "c", 3, inside))  # in the window on Cassandra only
    target.execute(f"ANALYZE public.{table}")

    with segment_settings(segment_rows=10):
        job = run(
            mapping,
            ValidationStrategy.TIMESTAMP_RANGE,
            window_from=NOW - dt.timedelta(hours=1),
            window_to=NOW,
        )

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert found(job) == {
        "lagging": MismatchType.DATA_MISMATCH,
        "new-missing": MismatchType.MISSING_IN_POSTGRES,
    }
    assert job.keys_examined == 50 + 2
    assert job.drift_percentage == pytest.approx(100 * 2 / 52)
    assert job.parameters == {"from": "2025-11-25T09:00:00Z", "to": "2025-11-25T10:00:00Z"}
    assert len(segments(job, SegmentKind.COMPARE)) >= 4
    assert segments(job, SegmentKind.STAGE)


def test_a_sample_job_is_not_segmented(users, reader) -> None:
    mapping, _ = users(40, changed=("user-000003",))

    job = run(mapping, ValidationStrategy.SAMPLE, sample_size=100)

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert not JobSegment.objects.filter(job=job).exists()
    body = reader.get(f"/reconciliation/jobs/{job.job_id}").json()
    assert (body["segments_total"], body["segments_done"]) == (0, 0)
    assert body["progress"] == 100.0


def test_the_job_json_counts_compare_segments(users, reader) -> None:
    mapping, _ = users(200)

    with segment_settings(segment_rows=25):
        job = run(mapping)

    compare = JobSegment.objects.filter(job=job, kind=SegmentKind.COMPARE).count()
    assert compare >= 4
    body = reader.get(f"/reconciliation/jobs/{job.job_id}").json()
    assert (body["segments_total"], body["segments_done"]) == (compare, compare)
    listed = reader.get("/reconciliation/jobs", {"table": mapping.name}).json()["jobs"]
    assert (listed[0]["segments_total"], listed[0]["segments_done"]) == (compare, compare)


# -- idempotent segments ---------------------------------------------------------------------


def run_here(segment_id: int, engine: Any) -> None:
    """Run one segment in this process with the function every path uses (nothing sent)."""
    with claimed(segment_id) as segment:
        assert segment is not None, f"segment {segment_id} could not be claimed"
        assert run_claimed(segment, engine)


def test_a_segment_run_again_writes_nothing_twice(users) -> None:
    mapping, expected = users(600, **PLANTED)
    job = create_job(mapping, ValidationStrategy.CHECKSUM)
    engine = engine_for(mapping, engine_options(job))
    with segment_settings(segment_rows=50):
        plan_job(job, engine)
    stage = segments(job, SegmentKind.STAGE)
    compare = segments(job, SegmentKind.COMPARE)
    assert len(stage) >= 2 and len(compare) >= 8

    # Stage everything, then stage the first block range once more (a lost worker's
    # segment, reset and taken over): its rows must not be staged twice.
    for segment in stage:
        run_here(segment.pk, engine)
    JobSegment.objects.filter(pk=stage[0].pk).update(status=SegmentStatus.PENDING)
    run_here(stage[0].pk, engine)
    for segment in compare:
        run_here(segment.pk, engine)
    with_differences = [s for s in segments(job, SegmentKind.COMPARE) if s.difference_count > 0]
    assert with_differences
    segment = with_differences[0]
    keys = sorted(bytes(d.key) for d in SegmentDifference.objects.filter(segment=segment))
    assert len(keys) == segment.difference_count

    # A DONE segment delivered again does nothing: same attempts, same finish.
    assert execute_segment(segment.pk) == SegmentStatus.DONE
    again = JobSegment.objects.get(pk=segment.pk)
    assert (again.attempts, again.finished_at) == (1, segment.finished_at)

    # Reset and delivered again: it runs, and its differences are replaced, not added.
    JobSegment.objects.filter(pk=segment.pk).update(status=SegmentStatus.PENDING)
    assert execute_segment(segment.pk) == SegmentStatus.DONE
    again = JobSegment.objects.get(pk=segment.pk)
    assert (again.status, again.attempts) == (SegmentStatus.DONE, 2)
    assert sorted(bytes(d.key) for d in SegmentDifference.objects.filter(segment=segment)) == keys
    assert SegmentDifference.objects.filter(segment__job=job).count() == len(expected)

    # The coordinator finds every segment DONE and only finalizes: one mismatch per key.  It
    # runs here, or in the test worker when that took the job execute_segment queued again
    # (nobody held its run lock then); either way it ends.
    run_in_process(job)
    wait_until(
        lambda: ReconciliationJob.objects.get(pk=job.pk).status != JobStatus.RUNNING,
        60,
        "the job's coordinator did not finish",
    )
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert found(job) == expected
    assert job.mismatch_count == len(expected)
    assert (job.cassandra_row_count, job.postgres_row_count) == (603, 603)
    assert Mismatch.objects.filter(job=job).count() == len(expected)
    attempts = dict(JobSegment.objects.filter(job=job).values_list("pk", "attempts"))
    assert attempts.pop(stage[0].pk) == 2
    assert attempts.pop(segment.pk) == 2
    assert set(attempts.values()) == {1}


def test_a_segment_another_process_is_running_is_left_to_it(users) -> None:
    import psycopg
    from django.db import connection

    from reconciliation.jobs.runner import BUSY
    from reconciliation.jobs.slots import SEGMENT_LOCK_KEY

    mapping, _ = users(40, **PLANTED)
    job = create_job(mapping, ValidationStrategy.ROW_COUNT)
    plan_job(job, engine_for(mapping, engine_options(job)))
    segment = segments(job, SegmentKind.COMPARE)[0]
    other = psycopg.connect(**connection.get_connection_params(), autocommit=True)
    try:  # another worker holds the segment's run lock (it is running it)
        other.execute("SELECT pg_advisory_lock(%s, %s)", (SEGMENT_LOCK_KEY, segment.pk % 2**31))
        assert execute_segment(segment.pk) == BUSY
        assert JobSegment.objects.get(pk=segment.pk).attempts == 0
    finally:
        other.close()  # that worker dies: its lock goes with its session

    assert execute_segment(segment.pk) == SegmentStatus.DONE
    assert JobSegment.objects.get(pk=segment.pk).attempts == 1


# -- the Celery path -------------------------------------------------------------------------


def finished(job_id: Any) -> ReconciliationJob | None:
    job = ReconciliationJob.objects.get(pk=job_id)
    return job if job.status != JobStatus.RUNNING else None


def test_celery_workers_and_one_process_find_the_same_differences(
    celery_worker_process, users, api_client
) -> None:
    mapping, expected = users(600, **PLANTED)
    client = api_client(superuser=True)

    response = client.post(
        "/reconciliation/trigger",
        {"tables": [mapping.name], "validation_strategy": "CHECKSUM"},
        format="json",
    )
    assert response.status_code == 202, response.json()
    (job_id,) = response.json()["job_ids"]
    by_celery = wait_until(lambda: finished(job_id), 180, f"job {job_id} is still RUNNING")
    in_process = run(mapping)

    assert by_celery.status == in_process.status == JobStatus.COMPLETED, (
        by_celery.error_message,
        in_process.error_message,
    )
    assert found(by_celery) == found(in_process) == expected
    for name in ("cassandra_row_count", "postgres_row_count", "keys_examined", "mismatch_count"):
        assert getattr(by_celery, name) == getattr(in_process, name), name
    assert JobSegment.objects.filter(job=by_celery, kind=SegmentKind.COMPARE).count() >= 4
    assert not JobSegment.objects.filter(job=by_celery).exclude(status=SegmentStatus.DONE).exists()


def test_workers_finish_a_job_whose_coordinator_and_segment_died(
    celery_worker_process, users
) -> None:
    """A worker SIGKILLed whole (coordinator and a segment) and its messages stuck in the
    broker: the segments left are run by the workers, the dead one is taken over, and the
    coordinator is queued again to finish the job."""
    mapping, expected = users(600, **PLANTED)
    job = create_job(mapping, ValidationStrategy.CHECKSUM)
    engine = engine_for(mapping, engine_options(job))
    with segment_settings(segment_rows=100):
        plan_job(job, engine)
    for segment in segments(job, SegmentKind.STAGE):
        run_here(segment.pk, engine)
    compare = segments(job, SegmentKind.COMPARE)
    run_here(compare[0].pk, engine)
    # compare[1] was RUNNING on the dead worker: its run lock went with that process.
    JobSegment.objects.filter(pk=compare[1].pk).update(status=SegmentStatus.RUNNING, attempts=1)

    # One message of the dead coordinator's made it to a live worker.
    assert execute_segment(compare[2].pk) == SegmentStatus.DONE

    done = wait_until(lambda: finished(job.pk), 120, f"job {job.pk} is still RUNNING")
    assert done.status == JobStatus.COMPLETED, done.error_message
    assert found(done) == expected
    attempts = dict(JobSegment.objects.filter(job=job).values_list("pk", "attempts"))
    assert attempts[compare[1].pk] == 2  # taken over once
    assert attempts[compare[0].pk] == attempts[compare[2].pk] == 1  # never redone


CAP_QUEUE = f"{TEST_QUEUE}_cap"


@pytest.fixture(scope="module")
def capped_worker(
    django_db_setup: None, celery_broker: str, tmp_path_factory: Any
) -> Iterator[subprocess.Popen[bytes]]:
    """A worker with two pool processes on a queue of its own, allowed ONE segment in
    flight per job (RECONCILIATION_MAX_SEGMENTS_IN_FLIGHT=1) and small segments."""
    log_path = tmp_path_factory.mktemp("capped") / "worker.log"
    env = child_env(
        CELERY_BROKER_URL=celery_broker,
        RECONCILIATION_MAX_SEGMENTS_IN_FLIGHT="1",
        RECONCILIATION_SEGMENT_ROWS="40",
    )
    suffix = os.environ.get("CDCRECON_TEST_SUFFIX", "")
    command = celery_worker_command(
        CAP_QUEUE, f"cdcrecon-capped{suffix}-{os.getpid()}@%h", concurrency=2
    )
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def ready() -> bool:
        assert process.poll() is None, log_path.read_text()
        return b" ready." in log_path.read_bytes()

    wait_until(ready, 90, f"the capped worker did not start; its log: {log_path}")
    yield process
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def test_a_job_never_has_more_segments_in_flight_than_the_cap(capped_worker, users) -> None:
    from cdcrecon.celery import app

    mapping, expected = users(600, **PLANTED)
    job = create_job(mapping, ValidationStrategy.CHECKSUM)
    ReconciliationJob.objects.filter(pk=job.pk).update(queue=CAP_QUEUE)
    app.send_task("reconciliation.run_job", args=[str(job.pk)], queue=CAP_QUEUE)

    in_flight_seen: list[int] = []
    in_flight = Q(status__in=[SegmentStatus.QUEUED, SegmentStatus.RUNNING])
    deadline = time.monotonic() + 180
    while finished(job.pk) is None:
        assert time.monotonic() < deadline, f"job {job.pk} is still RUNNING"
        in_flight_seen.append(JobSegment.objects.filter(in_flight, job=job).count())
        time.sleep(0.02)

    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert found(job) == expected
    assert max(in_flight_seen) == 1, sorted(set(in_flight_seen))
    # The stronger form: no two segments' run times overlapped (two pool processes could
    # have run two at once).
    ran = sorted(JobSegment.objects.filter(job=job), key=lambda s: s.started_at)
    assert len(ran) >= 8
    for before, after in zip(ran, ran[1:], strict=False):
        assert before.finished_at <= after.started_at, (before, after)
