"""A repair policy's run as its job shows it (``repair_run``: running, interrupted, done), and
a lost run: resumed by its redelivery, its lost attempt's audit entry closed as ABANDONED,
no write repeated (``reconciliation.repair.runs``).

A lost run is made here by a process "dying" in the middle of a repair: the target row is
written and committed, then ``SystemExit`` (not an ``Exception``: nothing catches it) ends
the run before the app database records the repair, which is what a SIGKILL at that moment
leaves.  tests/integration/test_repair_run_worker_killed.py does it with a real worker.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from gdpr.models import AuditAction, AuditLogEntry, StoreStatus
from reconciliation.choices import ResolutionStatus
from reconciliation.locks import repair_policy_lock
from reconciliation.models import AutoRepairAction, ReconciliationJob, TableMapping
from reconciliation.repair import manual, runs
from reconciliation.repair.policy import run_policy
from reconciliation.tasks import reap_stalled_jobs
from tests.integration.conftest import target_writes as writes
from tests.integration.test_auto_repair import (
    DIFFERENT,
    MISSING,
    detect,
    email,
    plant,
    source_rows,
    statuses,
    target_rows,
)

pytestmark = pytest.mark.django_db(transaction=True)

REPAIRABLE = len(MISSING) + len(DIFFERENT)  # the default policy leaves EXTRA alone


def die_during_repair(monkeypatch: pytest.MonkeyPatch, after: int) -> None:
    """The ``after + 1``-th repair writes the target, then its process 'dies'."""
    original = manual._repair_in_stores
    calls = {"n": 0}

    def repair_then_die(*args: Any, **kwargs: Any) -> None:
        original(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] > after:
            raise SystemExit("killed")

    monkeypatch.setattr(manual, "_repair_in_stores", repair_then_die)


def lose_a_run(monkeypatch: pytest.MonkeyPatch, mapping: TableMapping, after: int) -> Any:
    job = detect(mapping)
    die_during_repair(monkeypatch, after)
    with pytest.raises(SystemExit):
        run_policy(job.pk)
    monkeypatch.undo()
    job.refresh_from_db()
    return job


def open_entries(job: ReconciliationJob) -> list[AuditLogEntry]:
    return list(
        AuditLogEntry.objects.filter(
            action=AuditAction.REPAIR, completed_at__isnull=True, details__job_id=str(job.pk)
        )
    )


def age_the_run(job: ReconciliationJob, seconds: float) -> None:
    """Make the run's last progress ``seconds`` old."""
    run = ReconciliationJob.objects.values_list("repair_run", flat=True).get(pk=job.pk)
    then = timezone.now() - dt.timedelta(seconds=seconds)
    run["last_progress_at"] = then.isoformat()
    ReconciliationJob.objects.filter(pk=job.pk).update(repair_run=run)


def test_a_finished_run_shows_done_with_its_progress_in_the_api_and_the_admin(
    table_pair, cassandra, target, api_client, admin_client
) -> None:
    mapping = plant(table_pair, cassandra, target, repair_policy="on", repair_min_age_seconds=0)
    job = detect(mapping)

    run_policy(job.pk)

    body = api_client(superuser=True).get(f"/reconciliation/jobs/{job.pk}").json()
    run = body["repair_run"]
    assert run["status"] == "done"
    assert (run["made"], run["repaired"], run["total"]) == (REPAIRABLE, REPAIRABLE, REPAIRABLE)
    assert (run["deliveries"], run["abandoned_audit_entries"]) == (1, 0)
    assert run["finished_at"] == body["repair_summary"]["finished_at"]
    assert run["resumed_at"] is None
    assert run["started_at"] <= run["last_progress_at"]
    page = admin_client.get(reverse("admin:reconciliation_reconciliationjob_change", args=[job.pk]))
    assert f"done: acted on {REPAIRABLE} of {REPAIRABLE} ({REPAIRABLE} repaired)" in (
        page.content.decode()
    )


def test_a_lost_run_shows_running_then_interrupted_after_the_visibility_timeout(
    table_pair, cassandra, target, api_client, monkeypatch, settings
) -> None:
    mapping = plant(table_pair, cassandra, target, repair_policy="on", repair_min_age_seconds=0)
    job = lose_a_run(monkeypatch, mapping, after=2)
    client = api_client(superuser=True)

    run = client.get(f"/reconciliation/jobs/{job.pk}").json()["repair_run"]
    assert run["status"] == "running"
    assert (run["made"], run["repaired"], run["total"]) == (2, 2, REPAIRABLE)
    assert client.get(f"/reconciliation/jobs/{job.pk}").json()["repair_summary"] is None

    age_the_run(job, 301)  # the default visibility timeout is 300 s
    listed = client.get(f"/reconciliation/jobs?table={mapping.name}").json()["jobs"]
    assert listed[0]["repair_run"]["status"] == "interrupted"
    assert listed[0]["repair_run"]["made"] == 2
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 600}
    assert client.get(f"/reconciliation/jobs/{job.pk}").json()["repair_run"]["status"] == (
        "running"
    )


def test_a_redelivered_run_resumes_abandons_the_lost_attempt_and_writes_each_row_once(
    table_pair, cassandra, target, monkeypatch, write_log
) -> None:
    mapping = plant(table_pair, cassandra, target, repair_policy="on", repair_min_age_seconds=0)
    log = write_log(mapping)
    job = lose_a_run(monkeypatch, mapping, after=2)
    (lost,) = open_entries(job)
    lost_key = lost.primary_key
    assert target_rows(target, mapping)[lost_key] == source_rows(cassandra, mapping)[lost_key]
    assert statuses(mapping)[lost_key] == ResolutionStatus.PENDING  # written, not recorded

    summary = run_policy(job.pk)  # the redelivery

    assert summary is not None and summary["status"] == "done"
    lost.refresh_from_db()
    assert (lost.cassandra_status, lost.postgres_status) == (
        StoreStatus.ABANDONED,
        StoreStatus.ABANDONED,
    )
    assert lost.completed_at is not None
    assert lost.details["action"] == "abandoned"
    assert "resumed" in lost.postgres_error
    # The lost attempt's row was already right: closed as equal, not written again.
    assert statuses(mapping)[lost_key] == ResolutionStatus.AUTO_RESOLVED
    assert (summary["repaired"], summary["skipped"]) == (REPAIRABLE - 1, {"equal_now": 1})
    assert writes(target, log) == {key: 1 for key in [*MISSING, *DIFFERENT]}
    source = source_rows(cassandra, mapping)
    rows = target_rows(target, mapping)
    assert all(rows[key] == (email(key), len(key)) == source[key] for key in source if key in rows)
    succeeded = AuditLogEntry.objects.filter(
        details__job_id=str(job.pk), postgres_status=StoreStatus.SUCCESS
    )
    assert sorted(e.primary_key for e in succeeded) == sorted(
        k for k in [*MISSING, *DIFFERENT] if k != lost_key
    )
    assert not open_entries(job)
    job.refresh_from_db()
    run = job.repair_run
    assert (run["status"], run["deliveries"], run["abandoned_audit_entries"]) == ("done", 2, 1)
    assert (run["made"], run["total"]) == (REPAIRABLE, REPAIRABLE)
    assert run["resumed_at"] is not None


def test_a_delivery_of_a_finished_run_does_nothing(table_pair, cassandra, target) -> None:
    mapping = plant(table_pair, cassandra, target, repair_policy="on", repair_min_age_seconds=0)
    job = detect(mapping)
    first = run_policy(job.pk)
    actions = AutoRepairAction.objects.filter(job=job).count()

    again = run_policy(job.pk)

    assert again == first
    assert AutoRepairAction.objects.filter(job=job).count() == actions
    job.refresh_from_db()
    assert job.repair_run["deliveries"] == 1


def test_an_unfinished_run_waits_while_the_tables_lock_is_held_elsewhere(
    table_pair, cassandra, target, monkeypatch
) -> None:
    mapping = plant(table_pair, cassandra, target, repair_policy="on", repair_min_age_seconds=0)
    job = lose_a_run(monkeypatch, mapping, after=1)
    other = detect(mapping, planted=False)

    with repair_policy_lock(mapping.pk) as held:
        assert held
        with pytest.raises(runs.ResumeLater) as waiting:
            run_policy(job.pk)
        busy = run_policy(other.pk)  # a run not started yet: recorded busy, as before

    assert 1 <= waiting.value.seconds < runs.visibility_timeout()
    job.refresh_from_db()
    assert job.repair_summary is None and job.repair_run["status"] == "running"
    assert len(open_entries(job)) == 1  # left alone: its run may be alive
    assert busy is not None and busy["status"] == "busy"


def test_the_reaper_abandons_a_lost_attempt_once_the_run_is_interrupted_and_no_run_is_alive(
    table_pair, cassandra, target, monkeypatch
) -> None:
    mapping = plant(table_pair, cassandra, target, repair_policy="on", repair_min_age_seconds=0)
    job = lose_a_run(monkeypatch, mapping, after=1)
    later = timezone.now() + dt.timedelta(seconds=runs.visibility_timeout() + 5)

    assert runs.sweep_interrupted() == []  # still running: too soon to tell
    with repair_policy_lock(mapping.pk):
        assert runs.sweep_interrupted(later) == []  # a run of the table is alive
    assert len(open_entries(job)) == 1

    age_the_run(job, runs.visibility_timeout() + 5)
    assert reap_stalled_jobs() == []  # beat's reaper task: no job to fail, but it sweeps

    assert not open_entries(job)
    (entry,) = AuditLogEntry.objects.filter(
        details__job_id=str(job.pk), postgres_status=StoreStatus.ABANDONED
    )
    assert entry.details["action"] == "abandoned"
    job.refresh_from_db()
    assert job.repair_run["abandoned_audit_entries"] == 1
    resumed = run_policy(job.pk)
    assert resumed is not None and resumed["status"] == "done"
    job.refresh_from_db()
    assert (job.repair_run["abandoned_audit_entries"], job.repair_run["deliveries"]) == (1, 2)


def test_the_schema_documents_the_run_on_the_job(client) -> None:
    schema = client.get("/api/schema/?format=json").json()

    components = schema["components"]["schemas"]
    job = components["Job"]["properties"]["repair_run"]
    assert job["readOnly"] is True and job.get("nullable") is True, job
    reference = job.get("$ref") or job["allOf"][0]["$ref"]
    run = components[reference.rsplit("/", 1)[-1]]["properties"]
    assert {"status", "made", "total", "started_at", "last_progress_at"} <= set(run)
    assert run["status"]["allOf"] == [{"$ref": "#/components/schemas/RepairRunStateEnum"}]
    assert components["RepairRunStateEnum"]["enum"] == ["running", "interrupted", "done"]
    summary = components["RepairSummary"]["properties"]["status"]  # its name unchanged
    assert summary["allOf"] == [{"$ref": "#/components/schemas/RepairSummaryStatusEnum"}]
    assert (
        "ABANDONED"
        in components["RepairRun"]["properties"]["abandoned_audit_entries"]["description"]
    )


def test_the_kill_switch_ends_a_lost_run_and_abandons_its_attempt(
    table_pair, cassandra, target, monkeypatch, settings
) -> None:
    mapping = plant(table_pair, cassandra, target, repair_policy="on", repair_min_age_seconds=0)
    job = lose_a_run(monkeypatch, mapping, after=1)
    settings.RECONCILIATION = dataclasses.replace(
        settings.RECONCILIATION, auto_repair_enabled=False
    )

    summary = run_policy(job.pk)

    assert summary is not None and summary["status"] == "kill_switch"
    job.refresh_from_db()
    assert (job.repair_run["status"], job.repair_run["abandoned_audit_entries"]) == ("done", 1)
    assert job.repair_run["made"] == 1  # what the lost run did before it died
    assert not open_entries(job)
