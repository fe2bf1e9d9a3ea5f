"""A job says where it is (``phase``) and why it failed (``error_message``), in the API's
JSON as in the model (issue 12)."""

from __future__ import annotations

import dataclasses
from contextlib import ExitStack

import pytest

from cdcrecon.conf import settings as conf
from reconciliation.choices import JobPhase, JobStatus, ValidationStrategy
from reconciliation.jobs import create_job, run_in_process
from reconciliation.jobs.runner import NO_SLOT, execute_job
from reconciliation.jobs.slots import job_slot
from reconciliation.models import ReconciliationJob

pytestmark = pytest.mark.django_db

COLUMNS = "id text PRIMARY KEY, email text"


@pytest.fixture
def users(table_pair, cassandra, target):
    mapping = table_pair(COLUMNS, COLUMNS)
    for i in range(6):
        cassandra.execute(
            f"INSERT INTO {mapping.cassandra_table} (id, email) VALUES (%s, 'e')", (f"u{i}",)
        )
    for i in range(4):  # u4 and u5 are missing in PostgreSQL
        target.execute(f"INSERT INTO public.{mapping.postgres_table} VALUES (%s, 'e')", (f"u{i}",))
    return mapping


def test_a_job_waiting_for_a_slot_is_queued_not_running_in_the_api(users, reader) -> None:
    job = create_job(users, ValidationStrategy.ROW_COUNT)

    with ExitStack() as held:
        for _ in range(conf.reconciliation.max_concurrent_jobs):
            held.enter_context(job_slot())
        assert execute_job(job.pk) == NO_SLOT

    body = reader.get(f"/reconciliation/jobs/{job.pk}").json()
    assert (body["status"], body["phase"], body["error_message"]) == ("RUNNING", "QUEUED", None)


def test_a_checksum_job_goes_through_reading_and_rechecking_to_done(users, settings) -> None:
    settings.RECONCILIATION = dataclasses.replace(
        settings.RECONCILIATION, recheck_delay_seconds=0.2
    )
    job = create_job(users, ValidationStrategy.CHECKSUM)
    seen: list[str] = []

    def note_phase(fraction: float, *segments: int) -> None:
        phase = ReconciliationJob.objects.values_list("phase", flat=True).get(pk=job.pk)
        if not seen or seen[-1] != phase:
            seen.append(phase)

    run_in_process(job, on_progress=note_phase)

    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert seen[0] == JobPhase.READING
    assert JobPhase.RECHECKING in seen
    assert job.phase == JobPhase.DONE
    assert job.error_message == ""


def test_a_failed_job_keeps_its_phase_and_says_which_store_failed(users, reader, settings):
    settings.TARGET = dataclasses.replace(
        settings.TARGET, database_url="postgres://cdcrecon@127.0.0.1:1/warehouse_test_gone"
    )
    job = create_job(users, ValidationStrategy.CHECKSUM)

    run_in_process(job)

    body = reader.get(f"/reconciliation/jobs/{job.pk}").json()
    assert body["status"] == "FAILED"
    assert body["phase"] == "READING"
    assert "Target PostgreSQL" in body["error_message"]
    listed = reader.get("/reconciliation/jobs", {"status": "FAILED"}).json()["jobs"]
    assert [j["error_message"] for j in listed] == [body["error_message"]]
