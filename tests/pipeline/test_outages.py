"""Outages of the real pipeline: the agent stopped while writes go on, the sink SIGKILLed
mid-stream, and auto-repair mending an outage before the pipeline replays it."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from pipeline import control
from reconciliation.choices import MismatchType, ResolutionStatus
from reconciliation.forensics.report import job_forensics
from reconciliation.models import Mismatch
from reconciliation.repair.policy import run_policy
from tests.pipeline.conftest import count_rows, run_job, statuses, wait_rows
from tests.support import wait_until

pytestmark = pytest.mark.pipeline

CASSANDRA = "id text PRIMARY KEY, email text, score int"
POSTGRES = "id text PRIMARY KEY, email text, score integer"
BUDGET = 15  # seconds: above the pipeline's steady lag, short enough for an outage test


def write_rows(cassandra, table: str, keys, email: str = "{key}@example.com", pause: float = 0):
    insert = cassandra.prepare(f"INSERT INTO {table} (id, email, score) VALUES (?, ?, ?)")
    for n, key in enumerate(keys):
        cassandra.execute(insert, (key, email.format(key=key), n))
        if pause:
            time.sleep(pause)


def target_rows(target, table: str) -> dict[str, tuple[str, int]]:
    rows = target.execute(f"SELECT id, email, score FROM public.{table}").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def source_rows(cassandra, table: str) -> dict[str, tuple[str, int]]:
    rows = cassandra.execute(f"SELECT id, email, score FROM {table}")
    return {r["id"]: (r["email"], r["score"]) for r in rows}


def stop_connector() -> dt.datetime:
    control.run_script("stop", "connector")
    return dt.datetime.now(dt.UTC)


def start_connector() -> dt.datetime:
    started = dt.datetime.now(dt.UTC)
    control.run_script("start", "connector")
    return started


def test_a_stopped_connector_is_a_pipeline_gap_of_its_window_that_heals_when_it_returns(
    cassandra, target, captured_table, sink_factory, connector_restored
) -> None:
    mapping = captured_table(CASSANDRA, POSTGRES, cdc_lag_budget_seconds=BUDGET)
    sink_factory()
    write_rows(cassandra, mapping.cassandra_table, [f"base-{i}" for i in range(50)])
    wait_rows(target, mapping.postgres_table, 50)

    stopped = stop_connector()
    outage_keys = [f"gap-{i}" for i in range(40)]
    write_rows(cassandra, mapping.cassandra_table, outage_keys, pause=0.2)
    last_write = time.time()
    time.sleep(max(0.0, last_write + BUDGET + 1 - time.time()))  # past the lag budget
    during = run_job(mapping)
    restarted = start_connector()

    assert (during.mismatch_count, during.in_flight_count) == (40, 0)
    found = statuses(mapping)
    assert set(found) == set(outage_keys)
    assert set(found.values()) == {ResolutionStatus.PENDING}
    report = job_forensics(during)
    gaps = [f for f in report["findings"] if f["rule"] == "pipeline_gap"]
    assert len(gaps) == 1, report["findings"]
    gap = gaps[0]
    assert gap["count"] == 40 and gap["mismatch_type"] == MismatchType.MISSING_IN_POSTGRES
    window_from = dt.datetime.fromisoformat(gap["evidence"]["from"])
    window_to = dt.datetime.fromisoformat(gap["evidence"]["to"])
    assert stopped <= window_from <= window_to <= restarted, (stopped, gap, restarted)
    assert window_to - window_from >= dt.timedelta(seconds=5)  # the 8 s of writes, not a point

    # The agent reads on from its offset: the outage's writes arrive, and the next run closes
    # every difference as arrived; nothing was repaired.
    wait_rows(target, mapping.postgres_table, 90)
    after = run_job(mapping)
    assert after.mismatch_count == 0
    closed = statuses(mapping)
    assert set(closed.values()) == {ResolutionStatus.AUTO_RESOLVED}, closed
    assert not Mismatch.objects.filter(
        table_name=mapping.name, resolution_status=ResolutionStatus.AUTO_REPAIRED
    ).exists()
    assert target_rows(target, mapping.postgres_table) == source_rows(
        cassandra, mapping.cassandra_table
    )


def test_a_sink_killed_mid_stream_replays_without_a_false_difference(
    cassandra, target, captured_table, sink_factory
) -> None:
    mapping = captured_table(CASSANDRA, POSTGRES, cdc_lag_budget_seconds=BUDGET)
    sink = sink_factory()
    keys = [f"row-{i:05d}" for i in range(4000)]
    from cassandra.concurrent import execute_concurrent_with_args

    insert = cassandra.prepare(
        f"INSERT INTO {mapping.cassandra_table} (id, email, score) VALUES (?, ?, ?)"
    )
    execute_concurrent_with_args(
        cassandra, insert, [(k, f"{k}@example.com", n) for n, k in enumerate(keys)], concurrency=64
    )
    wait_until(
        lambda: 0 < count_rows(target, mapping.postgres_table),
        90,
        "the sink wrote nothing",
    )
    sink.kill()  # SIGKILL while it streams: an open transaction and uncommitted offsets lost
    killed_at = count_rows(target, mapping.postgres_table)
    assert killed_at < len(keys), "the sink had finished before it was killed: nothing tested"
    sink.start()  # the same consumer group: it reads on from the last committed offset
    wait_rows(target, mapping.postgres_table, len(keys))

    job = run_job(mapping)
    assert (job.mismatch_count, job.in_flight_count) == (0, 0), statuses(mapping)
    assert statuses(mapping) == {}
    assert target_rows(target, mapping.postgres_table) == source_rows(
        cassandra, mapping.cassandra_table
    )


def test_auto_repair_during_an_outage_is_not_undone_by_the_replay(
    cassandra, target, captured_table, sink_factory, connector_restored
) -> None:
    mapping = captured_table(
        CASSANDRA,
        POSTGRES,
        cdc_lag_budget_seconds=BUDGET,
        repair_policy="on",
        repair_min_age_seconds=0,
    )
    sink = sink_factory()
    base = [f"base-{i}" for i in range(20)]
    write_rows(cassandra, mapping.cassandra_table, base)
    wait_rows(target, mapping.postgres_table, 20)

    stop_connector()
    new = [f"new-{i}" for i in range(20)]
    write_rows(cassandra, mapping.cassandra_table, new)
    write_rows(cassandra, mapping.cassandra_table, base[:10], email="changed-{key}@example.com")
    time.sleep(BUDGET + 1)
    job = run_job(mapping)
    assert job.mismatch_count == 30
    summary = run_policy(job.pk)
    assert summary is not None and summary["repaired"] == 30, summary
    repaired = target_rows(target, mapping.postgres_table)
    assert repaired == source_rows(cassandra, mapping.cassandra_table)
    stale_before = sink.results("stale")

    # The agent comes back and replays the outage's 30 mutations, all older than the repairs.
    start_connector()
    wait_until(
        lambda: sink.results("stale") - stale_before >= 30,
        90,
        "the sink never saw the outage's mutations replayed",
    )
    assert target_rows(target, mapping.postgres_table) == repaired  # nothing undone
    # A write after the repair still flows through.
    write_rows(cassandra, mapping.cassandra_table, ["base-0"], email="later@example.com")
    wait_until(
        lambda: target_rows(target, mapping.postgres_table)["base-0"][0] == "later@example.com",
        60,
        "a write after the repair did not arrive",
    )
    after = run_job(mapping)
    assert (after.mismatch_count, after.in_flight_count) == (0, 0)
    assert set(statuses(mapping).values()) == {ResolutionStatus.AUTO_REPAIRED}
    assert target_rows(target, mapping.postgres_table) == source_rows(
        cassandra, mapping.cassandra_table
    )
