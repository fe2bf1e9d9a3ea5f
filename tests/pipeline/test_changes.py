"""What the pipeline does with changes beyond inserts: deletes, a column added mid-stream, and
a transform bug in the sink (its test hook), each as cdcrecon then reports it."""

from __future__ import annotations

import time

import pytest

from pipeline import control
from reconciliation.choices import MismatchType, ResolutionStatus
from reconciliation.forensics.report import job_forensics
from reconciliation.ledger import inflight
from reconciliation.models import Mismatch
from tests.pipeline.conftest import count_rows, micros, run_job, statuses, wait_rows
from tests.support import wait_until

pytestmark = pytest.mark.pipeline

CASSANDRA = "id text PRIMARY KEY, email text, score int"
POSTGRES = "id text PRIMARY KEY, email text, score integer"


def test_deletes_arrive_through_the_pipeline(
    cassandra, target, captured_table, sink_factory
) -> None:
    mapping = captured_table(CASSANDRA, POSTGRES)
    sink_factory()
    table = mapping.cassandra_table
    insert = cassandra.prepare(f"INSERT INTO {table} (id, email, score) VALUES (?, ?, ?)")
    for i in range(30):
        cassandra.execute(insert, (f"row-{i}", f"{i}@example.com", i))
    wait_rows(target, mapping.postgres_table, 30)

    for i in range(10):
        cassandra.execute(f"DELETE FROM {table} WHERE id = %s", (f"row-{i}",))
    cassandra.execute(f"DELETE score FROM {table} WHERE id = 'row-20'")  # one cell, not the row
    wait_rows(target, mapping.postgres_table, 20)
    wait_until(
        lambda: (
            target.execute(
                f"SELECT score IS NULL FROM public.{mapping.postgres_table} WHERE id = 'row-20'"
            ).fetchone()
            == (True,)
        ),
        60,
        "the cell delete did not arrive",
    )

    job = run_job(mapping)
    inflight.settle_job(job)
    job.refresh_from_db()
    assert job.mismatch_count == 0
    assert not Mismatch.objects.filter(
        table_name=mapping.name, resolution_status=ResolutionStatus.PENDING
    ).exists()


def test_a_column_added_in_cassandra_mid_stream_is_a_schema_warning_not_differences(
    cassandra, target, captured_table, sink_factory
) -> None:
    mapping = captured_table(CASSANDRA, POSTGRES)
    sink = sink_factory()
    table = mapping.cassandra_table
    insert = cassandra.prepare(f"INSERT INTO {table} (id, email, score) VALUES (?, ?, ?)")
    for i in range(20):
        cassandra.execute(insert, (f"row-{i}", f"{i}@example.com", i))
    wait_rows(target, mapping.postgres_table, 20)

    offset = control.log_size()
    cassandra.execute(f"ALTER TABLE {table} ADD phone text")
    control.wait_for_log(rf"{table}", offset, 15)  # the agent hears of the new column
    with_phone = cassandra.prepare(
        f"INSERT INTO {table} (id, email, score, phone) VALUES (?, ?, ?, ?)"
    )
    for i in range(15, 40):  # 5 updates, 20 new rows, all with the new column
        cassandra.execute(with_phone, (f"row-{i}", f"{i}@example.com", i, f"+49-{i}"))
    wait_rows(target, mapping.postgres_table, 40)
    wait_until(
        lambda: sink.log.read_text().count("has no column phone") >= 1,
        30,
        "the sink never saw the new column",
    )

    job = run_job(mapping)
    inflight.settle_job(job)
    job.refresh_from_db()
    assert "phone" in str(job.schema_warnings), job.schema_warnings
    assert job.mismatch_count == 0, statuses(mapping)
    assert count_rows(target, mapping.postgres_table) == 40


def test_a_transform_bug_in_the_sink_is_a_column_transform_finding(
    cassandra, target, captured_table, sink_factory
) -> None:
    mapping = captured_table(CASSANDRA, POSTGRES)
    # The sink's test hook: it alters `email` in every row it writes.
    sink_factory(PIPELINE_SINK_CORRUPT=f"{mapping.postgres_table}.email")
    table = mapping.cassandra_table
    insert = cassandra.prepare(
        f"INSERT INTO {table} (id, email, score) VALUES (?, ?, ?) USING TIMESTAMP ?"
    )
    an_hour_ago = micros(time.time() - 3600)  # older than any lag budget: drift at once
    for i in range(30):
        cassandra.execute(insert, (f"row-{i}", f"{i}@example.com", i, an_hour_ago + i))
    wait_rows(target, mapping.postgres_table, 30)

    job = run_job(mapping)

    rows = target.execute(f"SELECT email FROM public.{mapping.postgres_table} LIMIT 2").fetchall()
    assert job.mismatch_count == 30, (job.in_flight_count, job.transient_count, rows)
    assert set(
        Mismatch.objects.filter(table_name=mapping.name).values_list("mismatch_type", flat=True)
    ) == {MismatchType.DATA_MISMATCH}
    findings = {f["rule"]: f for f in job_forensics(job)["findings"]}
    assert "column_transform" in findings, findings
    assert findings["column_transform"]["evidence"]["columns"] == ["email"]
    assert findings["column_transform"]["count"] == 30
    assert "pipeline_gap" not in findings


def test_rows_expired_by_ttl_stay_in_the_copy_and_are_explained_as_expired_not_a_fault(
    cassandra, target, captured_table, sink_factory
) -> None:
    mapping = captured_table(CASSANDRA, POSTGRES)
    sink_factory()
    table = mapping.cassandra_table
    insert = cassandra.prepare(f"INSERT INTO {table} (id, email, score) VALUES (?, ?, ?)")
    with_ttl = cassandra.prepare(
        f"INSERT INTO {table} (id, email, score) VALUES (?, ?, ?) USING TTL 12"
    )
    for i in range(10):
        cassandra.execute(insert, (f"kept-{i}", f"{i}@example.com", i))
        cassandra.execute(with_ttl, (f"ttl-{i}", f"t{i}@example.com", i))
    wait_rows(target, mapping.postgres_table, 20)
    # The copy knows when each row expires in Cassandra; PostgreSQL has no TTL of its own.
    assert count_rows(target, mapping.postgres_table, "_cdc_expires_at IS NOT NULL") == 10
    wait_until(
        lambda: cassandra.execute(f"SELECT count(*) FROM {table}").one()["count"] == 10,
        30,
        "the TTL rows did not expire in Cassandra",
    )
    time.sleep(3)  # nothing arrives for an expiry: it is not in the commit log
    assert count_rows(target, mapping.postgres_table) == 20

    job = run_job(mapping)

    assert job.mismatch_count == 10
    assert set(statuses(mapping)) == {f"ttl-{i}" for i in range(10)}
    findings = {f["rule"]: f for f in job_forensics(job)["findings"]}
    assert "expired_in_cassandra" in findings, findings
    assert findings["expired_in_cassandra"]["count"] == 10
    assert "deletes_not_propagated" not in findings  # not a pipeline fault
    assert "pipeline_gap" not in findings
