"""One job, many workers (issue 13): a CHECKSUM job's token-range segments spread over two
worker processes that share one queue and no disk, survive a SIGKILLed worker, and a FAILED
job resumes from where it stopped.

Every table here holds all three kinds of difference, planted at known keys: rows only in
Cassandra (MISSING_IN_POSTGRES), rows only in PostgreSQL (MISSING_IN_CASSANDRA) and rows
whose data differ (DATA_MISMATCH).  The workers cut segments of SEGMENT_ROWS rows, so a
table of a few thousand rows makes many of them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from cassandra.concurrent import execute_concurrent_with_args

from reconciliation.models.segments import JobSegment
from tests.faults.conftest import (
    SEGMENT_ROWS,
    USERS_COLUMNS,
    Driver,
    PrivateStack,
    Worker,
    is_dead,
    measure,
)
from tests.support import REPO, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

PLANTED_PER_TYPE = 6


@dataclass
class PlantedTable:
    name: str
    cassandra_rows: int
    postgres_rows: int
    # key -> the mismatch type a correct run reports for it
    expected: dict[str, str]


@pytest.fixture
def planted_table(
    private_stack: PrivateStack, private_cassandra: Callable[[], Any]
) -> Callable[[int], PlantedTable]:
    """``planted_table(rows)``: ``rows`` equal rows on both sides, plus PLANTED_PER_TYPE
    differences of each type, spread over the key space (so over the ring)."""

    def make(rows: int) -> PlantedTable:
        name = f"s_{uuid.uuid4().hex[:12]}"
        same = [(f"user-{i:06d}", f"u{i}@example.com") for i in range(rows)]
        only_cassandra = [(f"only-c-{k}", f"c{k}@example.com") for k in range(PLANTED_PER_TYPE)]
        only_postgres = [(f"only-p-{k}", f"p{k}@example.com") for k in range(PLANTED_PER_TYPE)]
        step = rows // PLANTED_PER_TYPE
        changed = {f"user-{k * step + 7:06d}" for k in range(PLANTED_PER_TYPE)}

        session = private_cassandra()
        session.execute(f"CREATE TABLE {name} ({USERS_COLUMNS})")
        insert = session.prepare(f"INSERT INTO {name} (id, email) VALUES (?, ?)")
        results = execute_concurrent_with_args(
            session, insert, same + only_cassandra, concurrency=64, raise_on_first_error=True
        )
        assert all(ok for ok, _ in results)
        session.cluster.shutdown()

        postgres_side = [
            (key, f"changed-{email}" if key in changed else email) for key, email in same
        ] + only_postgres
        with psycopg.connect(private_stack.target_url, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE public.{name} ({USERS_COLUMNS})")
            with conn.cursor() as cursor:
                with cursor.copy(f"COPY public.{name} (id, email) FROM STDIN") as copy:
                    for row in postgres_side:
                        copy.write_row(row)
            conn.execute(f"ANALYZE public.{name}")  # the target's row estimate

        expected = {key: "MISSING_IN_POSTGRES" for key, _ in only_cassandra}
        expected |= {key: "MISSING_IN_CASSANDRA" for key, _ in only_postgres}
        expected |= {key: "DATA_MISMATCH" for key in changed}
        return PlantedTable(name, rows + PLANTED_PER_TYPE, rows + PLANTED_PER_TYPE, expected)

    return make


def finished(job: dict[str, Any]) -> bool:
    return job["status"] != "RUNNING"


def found_by_key(findings: dict[str, Any]) -> dict[str, str]:
    pairs = findings["findings"]
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(keys)), f"a key found twice by one job: {sorted(keys)}"
    return dict(pairs)


def compare_segments(segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in segments if s["kind"] == "COMPARE"]


def pid_of(segment: dict[str, Any]) -> int:
    """The pid in a segment's ``worker`` ("host:pid")."""
    host, _, pid = segment["worker"].rpartition(":")
    assert host and pid.isdigit(), f"worker is not host:pid: {segment['worker']!r}"
    return int(pid)


def assert_exact(driver: Driver, job_id: str, planted: PlantedTable) -> dict[str, Any]:
    """The job COMPLETED with exactly the planted differences, each written once."""
    job = driver.job(job_id)
    assert job["status"] == "COMPLETED", job
    findings = driver.findings(job_id)
    assert found_by_key(findings) == planted.expected
    assert findings["finding_rows"] == len(planted.expected)
    # A new table: every ledger row is this job's, and one per key (no duplicate delivery).
    assert findings["mismatch_rows"] == len(planted.expected)
    assert job["mismatch_count"] == len(planted.expected)
    assert job["transient_count"] == 0
    assert (job["cassandra_row_count"], job["postgres_row_count"]) == (
        planted.cassandra_rows,
        planted.postgres_rows,
    )
    assert job["segments_total"] > 0
    assert job["segments_done"] == job["segments_total"], job
    segments = driver.segments(job_id)
    assert len(compare_segments(segments)) == job["segments_total"]
    assert all(s["status"] == "DONE" for s in segments), [
        (s["kind"], s["number"], s["status"]) for s in segments if s["status"] != "DONE"
    ]
    return job


def reconcile_in_one_process(stack: PrivateStack, table: str, tmpdir: str) -> dict[str, Any]:
    """``manage.py reconcile TABLE --strategy CHECKSUM --json`` on the same stores."""
    result = subprocess.run(
        [sys.executable, "manage.py", "reconcile", table, "--strategy", "CHECKSUM", "--json"],
        cwd=REPO,
        env=stack.app_env(RECONCILIATION_SEGMENT_ROWS=str(SEGMENT_ROWS), TMPDIR=tmpdir),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def owners(workers: list[Worker]) -> dict[int, str]:
    """pid of each worker's pool process -> the worker's name."""
    return {pid: worker.name for worker in workers for pid in worker.pool_children()}


def wait_mid_compare(driver: Driver, job_id: str, workers: list[Worker]) -> tuple[list, dict]:
    """Wait until the job is in the middle of its COMPARE segments: a few DONE, many still
    to do, and one RUNNING in a pool process of ``workers``; the segments and that one."""

    def mid_compare() -> tuple[list, dict] | None:
        segments = driver.segments(job_id)
        compare = compare_segments(segments)
        done = [s for s in compare if s["status"] == "DONE"]
        children = owners(workers)
        running = [s for s in compare if s["status"] == "RUNNING" and pid_of(s) in children]
        assert len(done) < len(compare) - 3 or not compare, (
            f"the COMPARE segments ran too fast to catch one mid-run: {len(done)} of "
            f"{len(compare)} DONE"
        )
        if len(done) >= 3 and running:
            return segments, running[0]
        return None

    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # polled closely: a segment takes a fraction of a second
        found = mid_compare()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"job {job_id} never had COMPARE segments DONE and RUNNING", pytrace=False)


@contextmanager
def held_running_segment(
    stack: PrivateStack, driver: Driver, job_id: str, workers: list[Worker]
) -> Iterator[dict[str, Any]]:
    """Wait until the job is mid-way through its COMPARE segments, then lock the row of one
    RUNNING in a pool process of ``workers`` (FOR UPDATE, on a connection of our own) and
    yield it: that process cannot mark it DONE until the lock is released, on leaving."""
    table = JobSegment._meta.db_table
    with psycopg.connect(stack.app_url) as conn:

        def lock_one() -> dict[str, Any] | None:
            _, _ = wait_mid_compare(driver, job_id, workers)
            children = owners(workers)
            for segment in compare_segments(driver.segments(job_id)):
                if segment["status"] != "RUNNING" or pid_of(segment) not in children:
                    continue
                try:
                    row = conn.execute(
                        f"SELECT worker, attempts FROM {table} "
                        "WHERE id = %s AND status = 'RUNNING' FOR UPDATE NOWAIT",
                        (segment["id"],),
                    ).fetchone()
                except psycopg.errors.LockNotAvailable:  # it is being recorded DONE now
                    row = None
                if row == (segment["worker"], segment["attempts"]):
                    return segment
                conn.rollback()
            return None

        victim = wait_until(lock_one, 240, f"no RUNNING COMPARE segment of {job_id} to hold")
        try:
            yield victim
        finally:
            conn.rollback()


def test_a_job_over_two_workers_without_shared_disk_finds_what_one_process_finds(
    private_stack, driver, segment_workers, planted_table, tmp_path
) -> None:
    planted = planted_table(8 * SEGMENT_ROWS)
    started = time.monotonic()

    job_id = driver.enqueue(planted.name, "CHECKSUM", segment_workers[0].queue)
    driver.wait_for(job_id, finished, 300, "finished")
    measure("segments_two_workers_job_seconds", time.monotonic() - started)

    job = assert_exact(driver, job_id, planted)
    # Sized from the table: ~8 segments of SEGMENT_ROWS rows (clamped to at least 4).
    assert job["segments_total"] >= 6, job
    # The segments ran in both workers' processes (host:pid), and nowhere else.
    segments = driver.segments(job_id)
    ran_in = {owners(segment_workers).get(pid_of(s), s["worker"]) for s in segments}
    assert ran_in == {"sa", "sb"}, [(s["kind"], s["number"], s["worker"]) for s in segments]
    assert all(s["attempts"] == 1 for s in segments)

    # One process, same stores, same data: the same differences, the same counts.
    single = reconcile_in_one_process(private_stack, planted.name, str(tmp_path))
    assert single["status"] == "COMPLETED", single
    assert {m["primary_key_value"]: m["mismatch_type"] for m in single["mismatches"]} == (
        found_by_key(driver.findings(job_id))
    )
    for name in ("cassandra_row_count", "postgres_row_count", "mismatch_count", "keys_examined"):
        assert single[name] == job[name], name
    assert single["segments_done"] == single["segments_total"] > 0


def test_a_worker_killed_mid_segment_and_the_job_still_completes_exactly(
    private_stack, driver, segment_workers, planted_table
) -> None:
    planted = planted_table(40 * SEGMENT_ROWS)
    job_id = driver.enqueue(planted.name, "CHECKSUM", segment_workers[0].queue)

    # Given a COMPARE segment running in a worker's pool process, held there: its row is
    # locked, so the process cannot record it DONE (it waits for the lock),
    with held_running_segment(private_stack, driver, job_id, segment_workers) as victim:
        done_before = {s["id"]: s for s in driver.segments(job_id) if s["status"] == "DONE"}
        # when that process is SIGKILLed,
        os.kill(pid_of(victim), signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(lambda: is_dead(pid_of(victim)), 10, "the pool process died")

    # then the job completes with exactly the planted differences,
    driver.wait_for(job_id, finished, 300, "finished after the kill")
    measure("segments_worker_kill_to_completed", time.monotonic() - killed_at)

    assert_exact(driver, job_id, planted)
    after = {s["id"]: s for s in driver.segments(job_id)}
    # the segments finished before were not redone (same attempts, finish and process),
    assert len(done_before) >= 3
    for segment_id, before in done_before.items():
        now = after[segment_id]
        assert (now["attempts"], now["finished_at"], now["worker"]) == (
            1,
            before["finished_at"],
            before["worker"],
        ), (before, now)
    # and the interrupted one ran once more, in another process.
    redone = after[victim["id"]]
    assert redone["attempts"] == victim["attempts"] + 1, (victim, redone)
    assert redone["worker"] != victim["worker"], redone


def test_a_failed_job_resumes_and_redoes_only_its_unfinished_segments(
    private_stack, driver, segment_workers, planted_table
) -> None:
    planted = planted_table(60 * SEGMENT_ROWS)
    job_id = driver.enqueue(planted.name, "CHECKSUM", segment_workers[0].queue)
    # Given a job part-way through its COMPARE segments,
    wait_mid_compare(driver, job_id, segment_workers)

    # when its Cassandra node crashes,
    private_stack.kill_cassandra()
    killed_at = time.monotonic()
    # then the job ends FAILED, naming Cassandra, with some segments DONE and some not.
    failed = driver.wait_for(job_id, finished, 180, "FAILED after Cassandra died")
    measure("segments_cassandra_kill_to_failed", time.monotonic() - killed_at)
    assert failed["status"] == "FAILED", failed
    assert "Cassandra" in failed["error_message"], failed
    at_failure = {s["id"]: s for s in driver.segments(job_id)}
    done_before = {i: s for i, s in at_failure.items() if s["status"] == "DONE"}
    unfinished = {i: s for i, s in at_failure.items() if s["status"] != "DONE"}
    assert any(s["kind"] == "COMPARE" for s in done_before.values()), at_failure
    assert any(s["kind"] == "COMPARE" for s in unfinished.values()), at_failure

    # When Cassandra is back and the job is resumed through the API,
    private_stack.services("up", "cassandra")
    resumed_at = dt.datetime.now(dt.UTC)
    answer = driver.api("POST", f"/reconciliation/jobs/{job_id}/resume")
    assert answer["status_code"] == 202, answer
    assert answer["body"]["job_id"] == job_id
    assert answer["body"]["status"] == "RUNNING"
    assert answer["body"]["error_message"] in (None, "")

    # then a worker of the job's queue takes it up again (it left QUEUED),
    driver.wait_for(
        job_id,
        lambda j: j["phase"] != "QUEUED" or j["status"] != "RUNNING",
        60,
        f"taken up again by a worker of its queue {segment_workers[0].queue}",
    )
    # and it completes with exactly the planted differences,
    driver.wait_for(job_id, finished, 300, "finished after resume")
    assert_exact(driver, job_id, planted)
    after = {s["id"]: s for s in driver.segments(job_id)}
    assert after.keys() == at_failure.keys()  # the same plan, not a new one
    # the segments DONE before were left alone,
    for segment_id, before in done_before.items():
        now = after[segment_id]
        for name in ("attempts", "started_at", "finished_at", "worker"):
            assert now[name] == before[name], (name, before, now)
    # and only the unfinished ones ran again, after the resume.
    for segment_id in unfinished:
        now = after[segment_id]
        assert dt.datetime.fromisoformat(now["finished_at"]) >= resumed_at, now
        assert now["attempts"] >= 1

    # A COMPLETED job is not resumable.
    again = driver.api("POST", f"/reconciliation/jobs/{job_id}/resume")
    assert again["status_code"] == 409, again


#: The read-rate cap of the capped CHECKSUM below (rows/s, the table's own cap).
READ_RATE_CAP = 2000


def test_a_capped_checksum_on_two_workers_reads_within_its_cap_and_finds_every_difference(
    private_stack, driver, segment_workers, planted_table
) -> None:
    # Given a table of about 6,000 rows whose mapping caps its reads at 2,000 rows/s,
    planted = planted_table(12 * SEGMENT_ROWS)
    cap = {"source_max_rows_per_second": READ_RATE_CAP}

    # when a CHECKSUM runs over the two workers of one queue,
    job_id = driver.enqueue(planted.name, "CHECKSUM", segment_workers[0].queue, mapping=cap)
    driver.wait_for(job_id, finished, 120, "finished")

    # then it finds exactly the planted differences, its segments ran in both workers,
    job = assert_exact(driver, job_id, planted)
    segments = driver.segments(job_id)
    ran_in = {owners(segment_workers).get(pid_of(s), s["worker"]) for s in segments}
    assert ran_in == {"sa", "sb"}, [(s["kind"], s["number"], s["worker"]) for s in segments]
    # and together they read Cassandra at no more than 1.1x the cap (the job's own measure:
    # its source rows over the wall time of its COMPARE segments),
    rate = job["source_rows_per_second"]
    assert rate is not None and rate <= 1.1 * READ_RATE_CAP, rate
    compare = compare_segments(segments)
    first = min(dt.datetime.fromisoformat(s["started_at"]) for s in compare)
    last = max(dt.datetime.fromisoformat(s["finished_at"]) for s in compare)
    span = (last - first).total_seconds()
    assert rate == pytest.approx(planted.cassandra_rows / span, rel=1e-6)
    # which is the cap at work: uncapped, these rows take a fraction of a second.
    assert span >= (planted.cassandra_rows - 0.2 * READ_RATE_CAP) / READ_RATE_CAP * 0.95, span
    measure("segments_capped_read_rate_rows_per_second", rate)
