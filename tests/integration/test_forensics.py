"""Forensics through real Cassandra and PostgreSQL: each planted cause of drift gives its
finding and no other (the rules: reconciliation/findings.py), per job and over the ledger."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest

from reconciliation.choices import JobStatus, MismatchType, ResolutionStatus
from reconciliation.choices import ValidationStrategy as S
from reconciliation.jobs import build_parameters, create_job, run_in_process
from reconciliation.models import Mismatch, ReconciliationJob
from tests.integration.conftest import VIEW_JOBS

ROWS_CASSANDRA = "id text PRIMARY KEY, email text, score int"
ROWS_POSTGRES = "id text PRIMARY KEY, email text, score int"
ORDERS_CASSANDRA = "customer text, order_id int, total int, PRIMARY KEY ((customer), order_id)"
ORDERS_POSTGRES = "customer text, order_id int, total int, PRIMARY KEY (customer, order_id)"
GAP_START = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)


def micros(when: dt.datetime) -> int:
    return int(when.timestamp() * 1_000_000)


def history(rng: random.Random) -> dt.datetime:
    """A write time somewhere in the three days before the gap."""
    return GAP_START - dt.timedelta(seconds=rng.uniform(3600, 3 * 86400))


def plant_rows(
    cassandra: Any,
    target: Any,
    mapping: Any,
    rows: int,
    *,
    written: Any,
    missing: set[int] = frozenset(),  # type: ignore[assignment]
    email_in_target: dict[int, str] | None = None,
    ttl: int | None = None,
) -> None:
    using = f"USING TIMESTAMP ? AND TTL {ttl}" if ttl else "USING TIMESTAMP ?"
    insert = cassandra.prepare(
        f"INSERT INTO {mapping.cassandra_table} (id, email, score) VALUES (?, ?, ?) {using}"
    )
    copies = []
    for i in range(rows):
        key, email = f"row-{i:04d}", f"user{i}@example.com"
        cassandra.execute(insert, (key, email, i, micros(written(i))))
        if i not in missing:
            copies.append((key, (email_in_target or {}).get(i, email), i))
    with target.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO public.{mapping.postgres_table} (id, email, score) VALUES (%s, %s, %s)",
            copies,
        )


def checksum(mapping: Any) -> ReconciliationJob:
    job = create_job(mapping, S.CHECKSUM, parameters=build_parameters(S.CHECKSUM))
    run_in_process(job)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error_message
    return job


def forensics_of(client: Any, job: ReconciliationJob) -> dict[str, Any]:
    response = client.get(f"/reconciliation/jobs/{job.job_id}/forensics")
    assert response.status_code == 200, response.content
    return response.json()


def rules(report: dict[str, Any]) -> list[str]:
    return [finding["rule"] for finding in report["findings"]]


@pytest.fixture
def api(api_client: Any) -> Any:
    return api_client(VIEW_JOBS)


def test_a_five_minute_gap_in_the_pipeline(
    cassandra: Any, target: Any, table_pair: Any, api: Any
) -> None:
    rng = random.Random(1)
    mapping = table_pair(ROWS_CASSANDRA, ROWS_POSTGRES)
    gap = set(range(0, 400, 8))  # 50 rows, every one written in 10:00–10:05
    written = {i: GAP_START + dt.timedelta(seconds=rng.uniform(0, 295)) for i in gap}
    plant_rows(
        cassandra,
        target,
        mapping,
        400,
        written=lambda i: written.get(i) or history(rng),
        missing=gap,
    )

    report = forensics_of(api, checksum(mapping))

    assert rules(report) == ["pipeline_gap"], report["findings"]
    finding = report["findings"][0]
    assert finding["count"] == 50 and finding["mismatch_type"] == MismatchType.MISSING_IN_POSTGRES
    assert (
        "50 of 50 MISSING_IN_POSTGRES were written 2026-11-20 10:00–10:05 UTC"
        in (finding["message"])
    )
    assert report["total"] == report["analyzed"] == 50
    assert report["bucket"] == "minute"
    assert sum(g["count"] for g in report["by_type_and_time"]) == 50
    assert all(g["bucket_start"].startswith("2026-11-20T10:0") for g in report["by_type_and_time"])


def test_one_column_a_transform_gets_wrong(
    cassandra: Any, target: Any, table_pair: Any, api: Any
) -> None:
    rng = random.Random(2)
    mapping = table_pair(ROWS_CASSANDRA, ROWS_POSTGRES)
    wrong = {i: f"USER{i}@EXAMPLE.COM" for i in range(5, 200, 25)}  # 8 rows
    plant_rows(
        cassandra, target, mapping, 200, written=lambda i: history(rng), email_in_target=wrong
    )

    report = forensics_of(api, checksum(mapping))

    assert rules(report) == ["column_transform"], report["findings"]
    assert "8 of 8 DATA_MISMATCH differ only in `email`" in report["findings"][0]["message"]
    assert report["by_column_set"] == [{"columns": ["email"], "count": 8}]


def test_a_hot_partition(cassandra: Any, target: Any, table_pair: Any, api: Any) -> None:
    mapping = table_pair(ORDERS_CASSANDRA, ORDERS_POSTGRES)
    insert = cassandra.prepare(
        f"INSERT INTO {mapping.cassandra_table} (customer, order_id, total) VALUES (?, ?, ?)"
    )
    copies = []
    for c in range(20):
        for o in range(20):
            cassandra.execute(insert, (f"customer-{c:02d}", o, o * 10))
            if c not in (3, 7, 11):  # three partitions the pipeline lost
                copies.append((f"customer-{c:02d}", o, o * 10))
    with target.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO public.{mapping.postgres_table} VALUES (%s, %s, %s)", copies
        )

    report = forensics_of(api, checksum(mapping))

    assert rules(report) == ["hot_partition"], report["findings"]
    assert report["findings"][0]["message"].startswith("all 60 differences are in 3 partitions")
    assert report["partitions"] == 3
    assert {tuple(p["partition"]) for p in report["by_partition"]} == {
        ("customer-03",),
        ("customer-07",),
        ("customer-11",),
    }


def test_deletes_that_never_reached_postgres(
    cassandra: Any, target: Any, table_pair: Any, api: Any
) -> None:
    rng = random.Random(3)
    mapping = table_pair(ROWS_CASSANDRA, ROWS_POSTGRES)
    plant_rows(cassandra, target, mapping, 100, written=lambda i: history(rng))
    for i in (4, 17, 33, 52, 90):
        cassandra.execute(f"DELETE FROM {mapping.cassandra_table} WHERE id = %s", (f"row-{i:04d}",))

    report = forensics_of(api, checksum(mapping))

    assert rules(report) == ["deletes_not_propagated"], report["findings"]
    assert report["findings"][0]["message"].startswith(
        "5 MISSING_IN_CASSANDRA: rows deleted or expired in Cassandra and still in PostgreSQL"
    )


def test_rows_with_a_ttl_are_ttl_churn(
    cassandra: Any, target: Any, table_pair: Any, api: Any
) -> None:
    rng = random.Random(4)
    mapping = table_pair(ROWS_CASSANDRA, ROWS_POSTGRES)
    # Rows written together a while ago with a day's TTL, never copied.
    plant_rows(
        cassandra,
        target,
        mapping,
        30,
        written=lambda i: (
            dt.datetime.now(dt.UTC) - dt.timedelta(hours=1, seconds=rng.uniform(0, 5))
        ),
        missing=set(range(0, 30, 3)),
        ttl=86400,
    )

    report = forensics_of(api, checksum(mapping))

    assert rules(report) == ["ttl_churn"], report["findings"]
    assert report["findings"][0]["count"] == 10


def test_the_ledger_view_covers_a_tables_open_differences(
    cassandra: Any, target: Any, table_pair: Any, api: Any
) -> None:
    rng = random.Random(5)
    mapping = table_pair(ROWS_CASSANDRA, ROWS_POSTGRES)
    plant_rows(cassandra, target, mapping, 50, written=lambda i: history(rng), missing={1, 2})
    checksum(mapping)
    closed = Mismatch.objects.get(table_name=mapping.name, primary_key_value="row-0001")
    closed.resolve(None, ResolutionStatus.MANUAL_RESOLVED, "copied by hand")

    response = api.get(f"/reconciliation/forensics?table={mapping.name}")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["scope"] == "open" and body["job_id"] is None
    assert body["total"] == 1  # the resolved one is no longer open


def test_bad_requests_are_json_errors(api: Any, table_pair: Any) -> None:
    mapping = table_pair(ROWS_CASSANDRA, ROWS_POSTGRES)
    unknown = api.get("/reconciliation/jobs/8d5e3c1e-0000-4000-8000-000000000000/forensics")
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
    assert api.get("/reconciliation/jobs/not-a-uuid/forensics").status_code == 404

    running = create_job(mapping, S.CHECKSUM, parameters=build_parameters(S.CHECKSUM))
    busy = api.get(f"/reconciliation/jobs/{running.job_id}/forensics")
    assert busy.status_code == 409 and busy.json()["error"] == "job_running"
    running.mark_failed("test over")

    missing = api.get("/reconciliation/forensics")
    assert missing.status_code == 400 and "table" in missing.json()["fields"]
    typo = api.get("/reconciliation/forensics?table=no_such_table")
    assert typo.status_code == 400 and "no_such_table" in typo.json()["fields"]["table"][0]
    extra = api.get(f"/reconciliation/forensics?table={mapping.name}&tabel=x")
    assert extra.status_code == 400 and "tabel" in extra.json()["fields"]


def test_forensics_need_the_permission_to_read_jobs(api_client: Any) -> None:
    nobody = api_client()
    assert nobody.get("/reconciliation/forensics?table=users").status_code == 403


def test_the_admin_shows_the_findings_and_the_histogram(
    cassandra: Any, target: Any, table_pair: Any, client: Any, admin_user: Any
) -> None:
    rng = random.Random(6)
    mapping = table_pair(ROWS_CASSANDRA, ROWS_POSTGRES)
    gap = set(range(0, 200, 10))
    written = {i: GAP_START + dt.timedelta(seconds=rng.uniform(0, 290)) for i in gap}
    plant_rows(
        cassandra,
        target,
        mapping,
        200,
        written=lambda i: written.get(i) or history(rng),
        missing=gap,
    )
    job = checksum(mapping)
    client.force_login(admin_user)

    page = client.get(f"/admin/reconciliation/reconciliationjob/{job.job_id}/change/")
    listing = client.get(f"/admin/reconciliation/mismatch/?table={mapping.name}")

    for response in (page, listing):
        assert response.status_code == 200
        html = response.content.decode()
        assert 'data-rule="pipeline_gap"' in html
        assert "20 of 20 MISSING_IN_POSTGRES were written 2026-11-20 10:00" in html
        assert '<svg class="cdc-histogram"' in html and "<rect x=" in html
    unfiltered = client.get("/admin/reconciliation/mismatch/").content.decode()
    assert "cdc-histogram" not in unfiltered
