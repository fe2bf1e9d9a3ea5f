"""Cassandra SIGKILLed mid-job, then restarted: the job FAILED by its own code, naming
Cassandra; after the restart a new job succeeds at once on every worker process, including
the ones whose cached session saw the outage (issue 12, fault 1)."""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import RECHECK_DELAY_SECONDS, measure

pytestmark = [pytest.mark.faults, pytest.mark.timeout(420)]


def test_a_cassandra_crash_fails_the_job_and_every_worker_recovers_at_once(
    private_stack, driver, workers, users_table
) -> None:
    table = users_table(60, 55)
    spare = users_table(10, 10)
    after = {worker.name: users_table(5, 5) for worker in workers}  # for the jobs after
    # Given both worker processes hold a Cassandra session that has worked,
    for worker in workers:
        job_id = driver.enqueue(spare, "ROW_COUNT", worker.queue)
        driver.wait_for(job_id, lambda j: j["status"] == "COMPLETED", 60, "COMPLETED (warm-up)")
    # and a job that is re-checking its differences on worker a,
    job_id = driver.enqueue(table, "CHECKSUM", workers[0].queue)
    driver.wait_for(job_id, lambda j: j["phase"] == "RECHECKING", 60, "RECHECKING")

    # when Cassandra is SIGKILLed,
    killed_at = time.monotonic()
    private_stack.kill_cassandra()

    # then the job ends FAILED by its own code, saying it was Cassandra.
    failed = driver.wait_for(
        job_id, lambda j: j["status"] != "RUNNING", RECHECK_DELAY_SECONDS + 40, "FAILED"
    )
    failed_after = time.monotonic() - killed_at
    measure("cassandra_kill_to_failed", failed_after)
    assert failed["status"] == "FAILED", failed
    assert "Cassandra" in failed["error_message"], failed
    assert "heartbeat" not in failed["error_message"].lower()  # not the reaper's verdict

    # When scripts/services brings it back,
    restart_began = time.monotonic()
    private_stack.services("up", "cassandra")
    recovered_at = time.monotonic()
    measure("cassandra_restart_duration", recovered_at - restart_began)

    # then a new job succeeds at once on every worker process.
    jobs = {
        worker.name: driver.enqueue(after[worker.name], "ROW_COUNT", worker.queue)
        for worker in workers
    }
    for name, job in jobs.items():
        done = driver.wait_for(job, lambda j: j["status"] != "RUNNING", 60, "finished")
        assert done["status"] == "COMPLETED", (name, done)
        measure(f"cassandra_recovery_to_success_worker_{name}", time.monotonic() - recovered_at)
