"""PostgreSQL restarted mid-job: the worker's app-database connection dies with it, yet the
job records its own end, FAILED with a message naming PostgreSQL, within 10 s; the next
jobs on every worker succeed (issue 12, fault 2)."""

from __future__ import annotations

import time

import psycopg
import pytest

from tests.faults.conftest import measure
from tests.support import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]


def waiting_on_a_lock(target_url: str, table: str) -> bool:
    """Is a session waiting for a lock on ``table``?  (Whatever its query: planning a job
    asks for the table's size by name parameters, a read names the table.)"""
    with psycopg.connect(target_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE relation = %s::regclass AND NOT granted",
            (f"public.{table}",),
        ).fetchone()
    return bool(row and row[0])


def test_a_postgres_restart_mid_job_fails_the_job_by_its_own_code(
    private_stack, driver, workers, users_table
) -> None:
    table = users_table(40, 40)
    after = {worker.name: users_table(4, 4) for worker in workers}  # for the jobs after
    for worker in workers:  # both workers hold an app-database connection from before
        warm = driver.enqueue(users_table(3, 3), "ROW_COUNT", worker.queue)
        driver.wait_for(warm, lambda j: j["status"] == "COMPLETED", 60, "COMPLETED (warm-up)")
    # Given a job whose read of the target is under way (held by a lock, so it is surely
    # mid-read when PostgreSQL goes),
    blocker = psycopg.connect(private_stack.target_url)
    blocker.execute(f"LOCK TABLE public.{table} IN ACCESS EXCLUSIVE MODE")
    job_id = driver.enqueue(table, "CHECKSUM", workers[0].queue)
    wait_until(
        lambda: waiting_on_a_lock(private_stack.target_url, table), 60, "the job reads the target"
    )

    # when PostgreSQL restarts (fast shutdown: every session is cut),
    restarted_at = time.monotonic()
    private_stack.services("down", "postgres")
    private_stack.services("up", "postgres")
    back_at = time.monotonic()
    blocker.close()

    # then the job is FAILED by its own code within 10 s, naming PostgreSQL,
    failed = driver.wait_for(job_id, lambda j: j["status"] != "RUNNING", 10, "FAILED")
    measure("postgres_restart_to_failed", time.monotonic() - restarted_at)
    measure("postgres_restart_duration", back_at - restarted_at)
    assert failed["status"] == "FAILED", failed
    assert "PostgreSQL" in failed["error_message"], failed
    assert "heartbeat" not in failed["error_message"].lower()  # not the reaper's verdict

    # and new jobs succeed on every worker (their app-database connections are replaced).
    jobs = {w.name: driver.enqueue(after[w.name], "ROW_COUNT", w.queue) for w in workers}
    for name, job in jobs.items():
        done = driver.wait_for(job, lambda j: j["status"] != "RUNNING", 60, "finished")
        assert done["status"] == "COMPLETED", (name, done)
        measure(f"postgres_recovery_to_success_worker_{name}", time.monotonic() - back_at)
