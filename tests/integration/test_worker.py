"""A triggered job runs through a real Celery worker process; the job slots are a semaphore.

The worker (tests/integration/conftest.py: ``celery_worker_process``) is a separate process
on the test database and a Redis database of its own, so everything it must see is
committed: these tests use ``transaction=True``.
"""

from __future__ import annotations

import datetime as dt
import time
from contextlib import ExitStack

import pytest
from django.db import connection
from django.utils import timezone

from cdcrecon.conf import settings
from reconciliation.choices import JobStatus
from reconciliation.jobs.runner import MISSING, NO_SLOT, execute_job
from reconciliation.jobs.slots import JOB_SLOT_LOCK_KEY, job_slot, slot_wait_seconds
from reconciliation.models import ReconciliationJob
from tests.factories import JobFactory
from tests.support import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

COLUMNS = "id text PRIMARY KEY, email text"


def users_table(table_pair, cassandra, target, *, in_cassandra: int, in_postgres: int) -> str:
    mapping = table_pair(COLUMNS, COLUMNS)
    for i in range(in_cassandra):
        cassandra.execute(
            f"INSERT INTO {mapping.cassandra_table} (id, email) VALUES (%s, %s)",
            (f"user-{i}", f"u{i}@example.com"),
        )
    for i in range(in_postgres):
        target.execute(
            f"INSERT INTO public.{mapping.postgres_table} (id, email) VALUES (%s, %s)",
            (f"user-{i}", f"u{i}@example.com"),
        )
    return mapping.name


def trigger(client, table: str, strategy: str = "ROW_COUNT") -> str:
    response = client.post(
        "/reconciliation/trigger",
        {"tables": [table], "validation_strategy": strategy},
        format="json",
    )
    assert response.status_code == 202, response.json()
    (job_id,) = response.json()["job_ids"]
    return job_id


def slots_in_use() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [JOB_SLOT_LOCK_KEY],
        )
        return cursor.fetchone()[0]


@pytest.fixture
def free_slots() -> None:
    """Wait until the worker has let go of the slot of a previous test's job."""
    wait_until(lambda: slots_in_use() == 0, 30, "a job slot is still held")


def finished(job_id: str) -> ReconciliationJob | None:
    job = ReconciliationJob.objects.get(pk=job_id)
    return job if job.status != JobStatus.RUNNING else None


def test_a_triggered_job_runs_on_a_real_worker_and_completes(
    celery_worker_process, table_pair, cassandra, target, api_client
) -> None:
    table = users_table(table_pair, cassandra, target, in_cassandra=3, in_postgres=2)
    client = api_client(superuser=True)

    job_id = trigger(client, table)
    job = wait_until(lambda: finished(job_id), 120, f"job {job_id} is still RUNNING")

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert (job.cassandra_row_count, job.postgres_row_count, job.mismatch_count) == (3, 2, 1)
    body = client.get(f"/reconciliation/jobs/{job_id}").json()
    assert body["status"] == "COMPLETED"
    assert body["completed_at"] is not None


def test_a_job_waits_while_every_slot_is_taken_and_runs_when_one_frees(
    celery_worker_process, table_pair, cassandra, target, api_client, free_slots
) -> None:
    table = users_table(table_pair, cassandra, target, in_cassandra=2, in_postgres=2)
    client = api_client(superuser=True)

    with ExitStack() as held:
        for _ in range(settings.reconciliation.max_concurrent_jobs):
            assert held.enter_context(job_slot()) is not None
        job_id = trigger(client, table)
        time.sleep(2 * slot_wait_seconds() + 2)

        waiting = ReconciliationJob.objects.get(pk=job_id)
        assert waiting.status == JobStatus.RUNNING  # queued behind the held slots
        # ... and alive: it touched its heartbeat while waiting for a slot.
        assert waiting.heartbeat_at - waiting.started_at >= dt.timedelta(
            seconds=slot_wait_seconds() - 1
        )

    job = wait_until(lambda: finished(job_id), 120, f"job {job_id} never got a slot")
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert job.mismatch_count == 0


def test_job_slots_are_a_semaphore_of_max_concurrent_jobs(free_slots) -> None:
    slots = settings.reconciliation.max_concurrent_jobs
    with ExitStack() as held:
        taken = [held.enter_context(job_slot()) for _ in range(slots)]
        assert sorted(taken) == list(range(slots))
        assert slots_in_use() == slots
        with job_slot() as extra:
            assert extra is None
    assert slots_in_use() == 0  # closing the holders' sessions released every slot
    with job_slot() as freed:
        assert freed == 0


def test_without_a_free_slot_a_job_is_touched_and_left_waiting(free_slots) -> None:
    job = JobFactory(status=JobStatus.RUNNING)
    ReconciliationJob.objects.filter(pk=job.pk).update(
        heartbeat_at=timezone.now() - dt.timedelta(minutes=1)
    )
    with ExitStack() as held:
        for _ in range(settings.reconciliation.max_concurrent_jobs):
            held.enter_context(job_slot())

        assert execute_job(job.pk) == NO_SLOT

    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert timezone.now() - job.heartbeat_at < dt.timedelta(seconds=10)


def test_a_job_that_waited_longer_than_the_time_limit_fails(free_slots) -> None:
    limit = settings.reconciliation.job_time_limit_seconds
    job = JobFactory(
        status=JobStatus.RUNNING, started_at=timezone.now() - dt.timedelta(seconds=limit + 60)
    )
    with ExitStack() as held:
        for _ in range(settings.reconciliation.max_concurrent_jobs):
            held.enter_context(job_slot())

        assert execute_job(job.pk) == JobStatus.FAILED

    job.refresh_from_db()
    assert "job slots" in job.error_message


def test_a_finished_or_missing_job_is_not_run_again() -> None:
    done = JobFactory(status=JobStatus.COMPLETED)

    assert execute_job(done.pk) == JobStatus.COMPLETED
    assert execute_job("00000000-0000-0000-0000-000000000000") == MISSING
