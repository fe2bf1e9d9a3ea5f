"""A worker process SIGKILLed mid-job: Celery redelivers the task (acks_late,
reject_on_worker_lost), a fresh pool process runs the job again and it completes with its
mismatches written once, no duplicates (issue 12, fault 3)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.faults.conftest import measure
from tests.support import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]


def test_a_worker_killed_mid_job_is_redelivered_and_finishes_without_duplicates(
    driver, workers, users_table
) -> None:
    worker = workers[1]
    table = users_table(50, 45)  # 5 rows missing in PostgreSQL
    job_id = driver.enqueue(table, "CHECKSUM", worker.queue)
    driver.wait_for(job_id, lambda j: j["phase"] == "RECHECKING", 60, "RECHECKING")
    (child,) = worker.pool_children()

    killed_at = time.monotonic()
    os.kill(child, signal.SIGKILL)

    done = driver.wait_for(job_id, lambda j: j["status"] != "RUNNING", 90, "finished")
    measure("worker_kill_to_completed", time.monotonic() - killed_at)
    assert done["status"] == "COMPLETED", done
    assert done["mismatch_count"] == 5
    assert done["mismatch_rows"] == 5  # written once, not once per delivery
    # The worker replaced its pool process and still serves its queue.
    wait_until(lambda: worker.pool_children() not in ([], [child]), 30, "a new pool process")
    again = driver.enqueue(users_table(3, 3), "ROW_COUNT", worker.queue)
    assert (
        driver.wait_for(again, lambda j: j["status"] != "RUNNING", 60, "finished")["status"]
        == "COMPLETED"
    )
