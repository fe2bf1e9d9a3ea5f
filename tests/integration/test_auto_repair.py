"""A table's repair policy (``reconciliation.repair.policy``) against the real Cassandra node and
PostgreSQL, and once through a real Celery worker.

Every test plants differences of each kind, runs a real CHECKSUM job to find them, then runs
the policy and checks both stores, the ledger, the audit log and the job's summary.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from gdpr.models import AuditAction, AuditLogEntry, StoreStatus
from reconciliation.choices import JobStatus, MismatchType, ResolutionStatus, ValidationStrategy
from reconciliation.jobs import create_job, run_in_process
from reconciliation.metrics_snapshot import read_snapshot
from reconciliation.models import (
    AutoRepairAction,
    Mismatch,
    ReconciliationJob,
    TableMapping,
)
from reconciliation.repair.manual import RepairFailed, repair_mismatch
from reconciliation.repair.policy import run_policy
from tests.support import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

COLUMNS = "id text PRIMARY KEY, email text, score int"

# The planted differences: which keys, of which kind.
MISSING = ["m1", "m2", "m3"]  # in Cassandra only: MISSING_IN_POSTGRES
DIFFERENT = ["d1", "d2"]  # in both, the target's email wrong: DATA_MISMATCH
EXTRA = ["x1", "x2"]  # in PostgreSQL only: MISSING_IN_CASSANDRA
SAME = ["s1", "s2", "s3", "s4"]


def email(key: str) -> str:
    return f"{key}@example.com"


def plant(table_pair: Any, cassandra: Any, target: Any, **policy: Any) -> TableMapping:
    """A table with every kind of difference, and the policy's fields set."""
    mapping = table_pair(COLUMNS, COLUMNS, **policy)
    for key in [*MISSING, *DIFFERENT, *SAME]:
        cassandra.execute(
            f"INSERT INTO {mapping.cassandra_table} (id, email, score) VALUES (%s, %s, %s)",
            (key, email(key), len(key)),
        )
    for key in [*DIFFERENT, *SAME, *EXTRA]:
        wrong = key in DIFFERENT or key in EXTRA
        target.execute(
            f"INSERT INTO public.{mapping.postgres_table} (id, email, score) VALUES (%s, %s, %s)",
            (key, f"stale-{key}@example.com" if wrong else email(key), len(key)),
        )
    return mapping


def detect(mapping: TableMapping, planted: bool = True) -> ReconciliationJob:
    """A real CHECKSUM job over the table, run here (``planted``: the first, which finds
    every planted difference)."""
    job = create_job(mapping, ValidationStrategy.CHECKSUM)
    run_in_process(job)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error_message
    if planted:
        assert job.mismatch_count == len(MISSING) + len(DIFFERENT) + len(EXTRA)
    return job


def target_rows(target: Any, mapping: TableMapping) -> dict[str, tuple[str, int]]:
    rows = target.execute(f"SELECT id, email, score FROM public.{mapping.postgres_table}")
    return {key: (mail, score) for key, mail, score in rows.fetchall()}


def source_rows(cassandra: Any, mapping: TableMapping) -> dict[str, tuple[str, int]]:
    rows = cassandra.execute(f"SELECT id, email, score FROM {mapping.cassandra_table}")
    return {row["id"]: (row["email"], row["score"]) for row in rows}


def statuses(mapping: TableMapping) -> dict[str, str]:
    return dict(
        Mismatch.objects.filter(table_name=mapping.name).values_list(
            "primary_key_value", "resolution_status"
        )
    )


def test_a_policy_on_repairs_exactly_the_eligible_differences_and_audits_each_column(
    table_pair, cassandra, target
) -> None:
    mapping = plant(table_pair, cassandra, target, repair_policy="on", repair_min_age_seconds=0)
    job = detect(mapping)

    summary = run_policy(job.pk)

    assert summary is not None
    assert (summary["status"], summary["policy"], summary["dry_run"]) == ("done", "on", False)
    assert summary["eligible"] == summary["repaired"] == len(MISSING) + len(DIFFERENT)
    assert (summary["failed"], summary["skipped"], summary["capped"]) == (0, {}, None)
    assert summary["not_eligible"] == {"type_not_allowed": len(EXTRA)}  # EXTRA off by default
    rows = target_rows(target, mapping)
    for key in [*MISSING, *DIFFERENT, *SAME]:
        assert rows[key] == (email(key), len(key)), key
    for key in EXTRA:  # deleting is not allowed by this policy: untouched
        assert rows[key] == (f"stale-{key}@example.com", len(key))
    now = statuses(mapping)
    assert {k for k, s in now.items() if s == ResolutionStatus.AUTO_REPAIRED} == {
        *MISSING,
        *DIFFERENT,
    }
    assert {k for k, s in now.items() if s == ResolutionStatus.PENDING} == set(EXTRA)
    repaired = Mismatch.objects.filter(table_name=mapping.name, primary_key_value="d1").get()
    assert repaired.resolved_by is not None
    assert repaired.resolved_by.username == f"policy:{mapping.name}"
    assert not repaired.resolved_by.has_usable_password()
    assert not repaired.resolved_by.is_active
    # One completed audit entry per repair, column by column, naming the policy and job.
    entries = AuditLogEntry.objects.filter(action=AuditAction.REPAIR, table=mapping.name)
    assert entries.count() == len(MISSING) + len(DIFFERENT)
    entry = entries.get(primary_key="d1")
    assert entry.postgres_status == StoreStatus.SUCCESS
    assert entry.completed_at is not None
    assert entry.requester == f"policy:{mapping.name}"
    assert entry.details["policy"] == "on" and entry.details["job_id"] == str(job.pk)
    assert entry.details["columns"] == {
        "email": {"before": "stale-d1@example.com", "after": "d1@example.com"}
    }
    inserted = entries.get(primary_key="m1").details["columns"]
    assert inserted["email"] == {"before": None, "after": "m1@example.com"}
    # The actions behind the summary, and the counter fed from them.
    results = AutoRepairAction.objects.filter(job=job).values_list("result", flat=True)
    assert sorted(results) == ["repaired"] * 5
    snap = read_snapshot()
    assert snap.auto_repairs[(mapping.name, MismatchType.DATA_MISMATCH, "repaired")] == 2
    assert snap.auto_repairs[(mapping.name, MismatchType.MISSING_IN_POSTGRES, "repaired")] == 3
    # A second job finds only what the policy may not fix.
    assert detect(mapping, planted=False).mismatch_count == len(EXTRA)


def test_extra_rows_are_deleted_only_when_the_policy_allows_it(
    table_pair, cassandra, target
) -> None:
    mapping = plant(
        table_pair,
        cassandra,
        target,
        repair_policy="on",
        repair_min_age_seconds=0,
        repair_missing_in_target=False,
        repair_data_mismatch=False,
        repair_extra_in_target=True,
    )
    job = detect(mapping)

    summary = run_policy(job.pk)

    assert summary is not None and summary["repaired"] == len(EXTRA)
    assert summary["not_eligible"] == {"type_not_allowed": len(MISSING) + len(DIFFERENT)}
    rows = target_rows(target, mapping)
    assert not set(EXTRA) & set(rows)
    assert all(rows[key] == (f"stale-{key}@example.com", len(key)) for key in DIFFERENT)


def test_a_dry_run_writes_nothing_to_either_store_and_records_what_it_would_do(
    table_pair, cassandra, target
) -> None:
    mapping = plant(
        table_pair, cassandra, target, repair_policy="dry_run", repair_min_age_seconds=0
    )
    job = detect(mapping)
    before = (target_rows(target, mapping), source_rows(cassandra, mapping), statuses(mapping))

    summary = run_policy(job.pk)

    assert summary is not None and summary["dry_run"] is True
    assert summary["would_repair"] == len(MISSING) + len(DIFFERENT)
    assert summary["repaired"] == 0
    after = (target_rows(target, mapping), source_rows(cassandra, mapping), statuses(mapping))
    assert after == before
    assert not AuditLogEntry.objects.filter(table=mapping.name).exists()
    results = set(AutoRepairAction.objects.filter(job=job).values_list("result", flat=True))
    assert results == {"would_repair"}


def test_differences_younger_than_the_minimum_age_are_left_alone(
    table_pair, cassandra, target
) -> None:
    mapping = plant(table_pair, cassandra, target, repair_policy="on", repair_min_age_seconds=3600)
    job = detect(mapping)

    summary = run_policy(job.pk)

    assert summary is not None
    assert summary["eligible"] == summary["repaired"] == 0
    assert summary["not_eligible"] == {
        "too_young": len(MISSING) + len(DIFFERENT),
        "type_not_allowed": len(EXTRA),
    }
    assert set(statuses(mapping).values()) == {ResolutionStatus.PENDING}
    assert target_rows(target, mapping)["d1"][0] == "stale-d1@example.com"


def test_the_minimum_age_defaults_to_the_tables_lag_budget_then_ten_minutes(db) -> None:
    mapping = TableMapping(name="t", cassandra_table="t", postgres_table="t")
    assert mapping.repair_min_age == 600.0
    mapping.cdc_lag_budget_seconds = 90
    assert mapping.repair_min_age == 90.0
    mapping.repair_min_age_seconds = 5
    assert mapping.repair_min_age == 5.0


def test_the_per_run_and_per_hour_caps_hold_and_a_capped_run_says_so(
    table_pair, cassandra, target
) -> None:
    mapping = plant(
        table_pair,
        cassandra,
        target,
        repair_policy="on",
        repair_min_age_seconds=0,
        repair_max_per_run=2,
        repair_max_per_hour=3,
    )
    job = detect(mapping)

    first = run_policy(job.pk)

    assert first is not None
    assert (first["repaired"], first["capped"], first["deferred"]) == (2, "per_run", 3)
    # A redelivered run of the same job carries on from what it already did: no more.
    again = run_policy(job.pk)
    assert again is not None and (again["repaired"], again["capped"]) == (2, "per_run")
    # The next job may make one more: the hour's cap of 3.
    second = detect(mapping, planted=False)
    later = run_policy(second.pk)
    assert later is not None and (later["repaired"], later["capped"]) == (1, "per_hour")
    repaired = [s for s in statuses(mapping).values() if s == ResolutionStatus.AUTO_REPAIRED]
    assert len(repaired) == 3
    snap = read_snapshot()
    assert snap.repair_capped[(mapping.name, "per_run")] == 1
    assert snap.repair_capped[(mapping.name, "per_hour")] == 1
    # An hour later the hour's cap has room again.
    AutoRepairAction.objects.filter(table_name=mapping.name).update(
        created_at=timezone.now() - dt.timedelta(hours=2)
    )
    third = run_policy(detect(mapping, planted=False).pk)
    assert third is not None and (third["repaired"], third["capped"]) == (2, None)


def test_rows_changed_since_detection_are_left_for_the_next_run_never_overwritten(
    table_pair, cassandra, target
) -> None:
    mapping = plant(table_pair, cassandra, target, repair_policy="on", repair_min_age_seconds=0)
    job = detect(mapping)
    # After the job: the pipeline wrote d1 again (still wrong, differently), the source
    # changed d2, and m1 arrived in the target, correct.
    table = mapping.postgres_table
    target.execute(f"UPDATE public.{table} SET email = 'newer-d1@example.com' WHERE id = 'd1'")
    cassandra.execute(
        f"UPDATE {mapping.cassandra_table} SET email = 'moved-d2@example.com' WHERE id = 'd2'"
    )
    target.execute(
        f"INSERT INTO public.{table} (id, email, score) VALUES ('m1', %s, 2)", (email("m1"),)
    )

    summary = run_policy(job.pk)

    assert summary is not None
    assert summary["skipped"] == {"changed_since_detection": 2, "equal_now": 1}
    assert summary["repaired"] == 2  # m2, m3
    rows = target_rows(target, mapping)
    assert rows["d1"][0] == "newer-d1@example.com"  # not overwritten
    assert rows["d2"][0] == "stale-d2@example.com"  # left for the next run
    now = statuses(mapping)
    assert now["d1"] == now["d2"] == ResolutionStatus.PENDING
    assert now["m1"] == ResolutionStatus.AUTO_RESOLVED  # both stores agree: closed
    # The next run sees the refreshed rows as they are and repairs them from the source.
    following = run_policy(detect(mapping, planted=False).pk)
    assert following is not None and following["repaired"] == 2
    rows = target_rows(target, mapping)
    assert rows["d1"][0] == email("d1") and rows["d2"][0] == "moved-d2@example.com"


def test_a_repair_that_would_write_a_changed_source_row_refuses_and_is_audited(
    table_pair, cassandra, target, django_user_model
) -> None:
    mapping = plant(table_pair, cassandra, target)
    detect(mapping)
    mismatch = Mismatch.objects.get(table_name=mapping.name, primary_key_value="d1")
    cassandra.execute(
        f"UPDATE {mapping.cassandra_table} SET email = 'moved@example.com' WHERE id = 'd1'"
    )
    user = django_user_model.objects.create_user("policy:x")

    with pytest.raises(RepairFailed) as failed:
        repair_mismatch(mismatch, user, refuse_source_changes=True)

    assert failed.value.code == "source_changed"
    assert "email" in failed.value.detail
    assert target_rows(target, mapping)["d1"][0] == "stale-d1@example.com"
    mismatch.refresh_from_db()
    assert mismatch.resolution_status == ResolutionStatus.PENDING
    entry = AuditLogEntry.objects.get(table=mapping.name, primary_key="d1")
    assert entry.details["action"] == "failed" and entry.completed_at is not None


def test_the_kill_switch_stops_the_next_run(table_pair, cassandra, target, settings) -> None:
    mapping = plant(table_pair, cassandra, target, repair_policy="on", repair_min_age_seconds=0)
    job = detect(mapping)
    before = target_rows(target, mapping)
    settings.RECONCILIATION = dataclasses.replace(
        settings.RECONCILIATION, auto_repair_enabled=False
    )

    summary = run_policy(job.pk)

    assert summary is not None and summary["status"] == "kill_switch"
    assert summary["repaired"] == 0
    assert target_rows(target, mapping) == before
    assert set(statuses(mapping).values()) == {ResolutionStatus.PENDING}
    assert not AutoRepairAction.objects.filter(table_name=mapping.name).exists()
    job.refresh_from_db()
    assert job.repair_summary["status"] == "kill_switch"


def test_no_policy_runs_after_an_inconclusive_job_or_when_the_policy_is_off(
    table_pair, cassandra, target
) -> None:
    mapping = plant(table_pair, cassandra, target, repair_min_age_seconds=0)  # policy off
    job = detect(mapping)
    assert run_policy(job.pk) is None
    job.refresh_from_db()
    assert job.repair_summary is None
    TableMapping.objects.filter(pk=mapping.pk).update(repair_policy="on")
    ReconciliationJob.objects.filter(pk=job.pk).update(keys_examined=0)  # examined nothing
    assert run_policy(job.pk) is None


def test_after_a_job_on_a_real_worker_the_policy_runs_and_the_api_shows_its_summary(
    celery_worker_process, table_pair, cassandra, target, api_client
) -> None:
    mapping = plant(table_pair, cassandra, target, repair_policy="on", repair_min_age_seconds=0)
    client = api_client(superuser=True)
    response = client.post(
        "/reconciliation/trigger",
        {"tables": [mapping.name], "validation_strategy": "CHECKSUM"},
        format="json",
    )
    assert response.status_code == 202, response.json()
    (job_id,) = response.json()["job_ids"]

    def summarised() -> dict[str, Any] | None:
        return ReconciliationJob.objects.get(pk=job_id).repair_summary

    wait_until(summarised, 120, f"job {job_id} has no repair summary")
    body = client.get(f"/reconciliation/jobs/{job_id}").json()
    assert body["status"] == "COMPLETED"
    summary = body["repair_summary"]
    assert (summary["repaired"], summary["failed"]) == (len(MISSING) + len(DIFFERENT), 0)
    listed = client.get(f"/reconciliation/jobs?table={mapping.name}").json()["jobs"]
    assert listed[0]["repair_summary"]["repaired"] == summary["repaired"]
    rows = target_rows(target, mapping)
    assert all(rows[key] == (email(key), len(key)) for key in [*MISSING, *DIFFERENT])
