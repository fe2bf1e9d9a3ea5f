"""Migration 0006_ledger merges the duplicate open rows the old one-row-per-run code left."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

T0 = dt.datetime(2025, 11, 25, 10, 0, tzinfo=dt.UTC)


def migrate(target: list[tuple[str, str]] | None = None) -> None:
    """Migrate to ``target``, or to the latest state (the leaf nodes) when None."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target if target is not None else executor.loader.graph.leaf_nodes())


def before_the_ledger() -> list[tuple[str, str]]:
    """The migrations the ledger's migration depends on (whatever it is numbered at merge)."""
    graph = MigrationExecutor(connection).loader.graph
    (ledger,) = [k for k in graph.nodes if k[0] == "reconciliation" and k[1].endswith("_ledger")]
    return sorted(p.key for p in graph.node_map[ledger].parents if p.key[0] == "reconciliation")


@pytest.mark.django_db(transaction=True)
def test_duplicate_open_rows_of_a_key_merge_into_one_that_keeps_the_history() -> None:
    migrate(before_the_ledger())
    try:
        jobs = [uuid.uuid4() for _ in range(3)]
        rows = []  # (job index, key, status, hours after T0)
        rows += [(0, "user-1", "PENDING", 0), (1, "user-1", "PENDING", 1)]
        rows += [(2, "user-1", "PENDING", 2), (0, "user-2", "PENDING", 0)]
        rows += [(1, "user-3", "MANUAL_RESOLVED", 1), (2, "user-3", "PENDING", 2)]
        with connection.cursor() as cursor:
            for i, job_id in enumerate(jobs):
                cursor.execute(
                    "INSERT INTO reconciliation_reconciliationjob (job_id, table_name, job_type, "
                    "validation_strategy, parameters, status, started_at, heartbeat_at, progress, "
                    "mismatch_count, transient_count, alert_fired, alert_level, schema_warnings, "
                    "error_message, phase, unreadable_value_count) VALUES (%s, 'users', 'MANUAL', "
                    "'CHECKSUM', '{}', 'COMPLETED', %s, %s, 1, 0, 0, false, 'NONE', '[]', '', "
                    "'DONE', 0)",
                    [job_id, T0 + dt.timedelta(hours=i), T0],
                )
            for job, key, status, hours in rows:
                cursor.execute(
                    "INSERT INTO reconciliation_mismatch (mismatch_id, job_id, table_name, "
                    "primary_key_value, mismatch_type, detected_at, resolution_status, "
                    "resolution_notes) VALUES (%s, %s, 'users', %s, 'DATA_MISMATCH', %s, %s, '')",
                    [uuid.uuid4(), jobs[job], key, T0 + dt.timedelta(hours=hours), status],
                )
    finally:
        migrate()

    from reconciliation.models import JobFinding, Mismatch

    merged = Mismatch.objects.get(primary_key_value="user-1")  # one row left
    assert merged.times_seen == 3
    assert merged.job_id == jobs[0]  # the job that first found it
    assert merged.first_seen_at == merged.detected_at == T0
    assert merged.last_seen_at == T0 + dt.timedelta(hours=2)
    assert set(JobFinding.objects.filter(mismatch=merged).values_list("job_id", flat=True)) == set(
        jobs
    )
    assert Mismatch.objects.get(primary_key_value="user-2").times_seen == 1
    # A resolved row is history, not a duplicate: it stays beside the open one.
    assert Mismatch.objects.filter(primary_key_value="user-3").count() == 2
    assert Mismatch.objects.open().count() == 3
