"""The four validation strategies, run as jobs against real Cassandra and PostgreSQL."""

from __future__ import annotations

import _thread
import dataclasses
import datetime as dt
import threading
import time
import uuid
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings

from cdcrecon.conf import settings
from reconciliation.choices import AlertLevel, JobStatus, MismatchType, ValidationStrategy
from reconciliation.jobs import build_parameters, create_job, run_in_process
from reconciliation.models import Mismatch, ReconciliationJob

USERS_CASSANDRA = "id text PRIMARY KEY, email text, score int, updated_at timestamp"
USERS_POSTGRES = "id text PRIMARY KEY, email text, score int, updated_at timestamptz"
NOW = dt.datetime(2025, 11, 25, 10, 0, tzinfo=dt.UTC)


def insert_both(cassandra, target, table: str, rows: list[tuple[Any, ...]]) -> None:
    for row in rows:
        insert_cassandra(cassandra, table, row)
        insert_postgres(target, table, row)


def insert_cassandra(cassandra, table: str, row: tuple[Any, ...]) -> None:
    cassandra.execute(
        f"INSERT INTO {table} (id, email, score, updated_at) VALUES (%s, %s, %s, %s)", row
    )


def insert_postgres(target, table: str, row: tuple[Any, ...]) -> None:
    target.execute(
        f"INSERT INTO public.{table} (id, email, score, updated_at) VALUES (%s, %s, %s, %s)", row
    )


def run(mapping, strategy: str = ValidationStrategy.CHECKSUM, **options: Any) -> ReconciliationJob:
    job = create_job(mapping, strategy, parameters=build_parameters(strategy, **options))
    run_in_process(job)
    job.refresh_from_db()
    return job


def mismatches(job: ReconciliationJob) -> dict[str, str]:
    return dict(Mismatch.objects.filter(job=job).values_list("primary_key_value", "mismatch_type"))


@pytest.fixture
def users(cassandra, target, table_pair):
    """A users table with ten equal rows on both sides."""
    mapping = table_pair(USERS_CASSANDRA, USERS_POSTGRES)
    rows = [(f"user-{i}", f"u{i}@example.com", i, NOW) for i in range(10)]
    insert_both(cassandra, target, mapping.name, rows)
    return mapping


def test_checksum_finds_nothing_when_both_sides_agree(users) -> None:
    job = run(users)

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert (job.cassandra_row_count, job.postgres_row_count, job.keys_examined) == (10, 10, 10)
    assert job.mismatch_count == 0
    assert job.drift_percentage == 0.0
    assert job.alert_fired is False and job.alert_level == AlertLevel.NONE
    assert job.completed_at is not None and job.progress == 1.0


def test_checksum_finds_rows_missing_on_each_side_and_changed_rows(
    cassandra, target, users
) -> None:
    table = users.name
    insert_cassandra(cassandra, table, ("only-in-cassandra", "c@example.com", 1, NOW))
    insert_postgres(target, table, ("only-in-postgres", "p@example.com", 2, NOW))
    target.execute(f"UPDATE public.{table} SET email = 'changed@example.com' WHERE id = 'user-3'")

    job = run(users)

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert mismatches(job) == {
        "only-in-cassandra": MismatchType.MISSING_IN_POSTGRES,
        "only-in-postgres": MismatchType.MISSING_IN_CASSANDRA,
        "user-3": MismatchType.DATA_MISMATCH,
    }
    assert (job.cassandra_row_count, job.postgres_row_count, job.keys_examined) == (11, 11, 12)
    assert job.mismatch_count == 3
    assert job.drift_percentage == pytest.approx(100 * 3 / 12)
    changed = Mismatch.objects.get(job=job, primary_key_value="user-3")
    assert changed.cassandra_data["email"] == "u3@example.com"
    assert changed.postgres_data["email"] == "changed@example.com"
    assert changed.cassandra_data["updated_at"] == "2025-11-25T10:00:00.000Z"
    assert len(changed.cassandra_checksum) == 64
    assert changed.cassandra_checksum != changed.postgres_checksum
    missing = Mismatch.objects.get(job=job, primary_key_value="only-in-cassandra")
    assert missing.postgres_checksum is None and missing.postgres_data is None
    assert missing.cassandra_data == {
        "id": "only-in-cassandra",
        "email": "c@example.com",
        "score": 1,
        "updated_at": "2025-11-25T10:00:00.000Z",
    }


def test_a_job_whose_drift_crosses_the_critical_threshold_fires_a_critical_alert(
    target, users
) -> None:
    target.execute(f"DELETE FROM public.{users.name} WHERE id IN ('user-1', 'user-2')")

    job = run(users)

    assert job.drift_percentage == pytest.approx(20.0)
    assert job.alert_fired is True
    assert job.alert_level == AlertLevel.CRITICAL


def test_a_composite_key_pairs_rows_by_partition_and_clustering_columns(
    cassandra, target, table_pair
) -> None:
    mapping = table_pair(
        "tenant text, day date, seq int, note text, PRIMARY KEY ((tenant, day), seq)",
        "tenant text, day date, seq int, note text, PRIMARY KEY (tenant, day, seq)",
    )
    table = mapping.name
    for tenant in ("acme", "globex"):
        for seq in range(3):
            values = (tenant, dt.date(2025, 11, 25), seq, f"n{seq}")
            cassandra.execute(
                f"INSERT INTO {table} (tenant, day, seq, note) VALUES (%s, %s, %s, %s)", values
            )
            target.execute(
                f"INSERT INTO public.{table} (tenant, day, seq, note) VALUES (%s, %s, %s, %s)",
                values,
            )
    target.execute(f"UPDATE public.{table} SET note = 'x' WHERE tenant = 'acme' AND seq = 2")
    target.execute(f"DELETE FROM public.{table} WHERE tenant = 'globex' AND seq = 0")

    job = run(mapping)

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert mismatches(job) == {
        '["acme","2025-11-25","2"]': MismatchType.DATA_MISMATCH,
        '["globex","2025-11-25","0"]': MismatchType.MISSING_IN_POSTGRES,
    }
    assert job.keys_examined == 6


def test_columns_on_one_side_only_are_schema_warnings_not_mismatches(
    cassandra, target, table_pair
) -> None:
    mapping = table_pair(
        "id text PRIMARY KEY, email text, nickname text",
        "id text PRIMARY KEY, email text, legacy_flag boolean, _cdc_offset bigint",
    )
    cassandra.execute(f"INSERT INTO {mapping.name} (id, email, nickname) VALUES ('a', 'e', 'n')")
    target.execute(
        f"INSERT INTO public.{mapping.name} (id, email, legacy_flag, _cdc_offset) "
        "VALUES ('a', 'e', true, 42)"
    )

    job = run(mapping)

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert job.mismatch_count == 0
    assert len(job.schema_warnings) == 2
    assert any("'nickname'" in w and "only in Cassandra" in w for w in job.schema_warnings)
    assert any("'legacy_flag'" in w and "only in PostgreSQL" in w for w in job.schema_warnings)
    assert not any("_cdc_offset" in w for w in job.schema_warnings)  # excluded by default


def test_excluded_columns_are_not_compared(cassandra, target, table_pair) -> None:
    mapping = table_pair(
        "id text PRIMARY KEY, email text, synced_at timestamp",
        "id text PRIMARY KEY, email text, synced_at timestamptz",
        excluded_columns=["synced_*"],
    )
    cassandra.execute(
        f"INSERT INTO {mapping.name} (id, email, synced_at) VALUES ('a', 'e', '2025-01-01')"
    )
    target.execute(
        f"INSERT INTO public.{mapping.name} (id, email, synced_at) VALUES ('a', 'e', '2030-01-01')"
    )

    job = run(mapping)

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert job.mismatch_count == 0
    assert job.schema_warnings == []


def test_a_key_column_missing_on_the_target_fails_the_job_naming_it(table_pair) -> None:
    mapping = table_pair(
        "tenant text, order_id int, total int, PRIMARY KEY (tenant, order_id)",
        "tenant text, total int",
    )

    job = run(mapping)

    assert job.status == JobStatus.FAILED
    assert "'order_id'" in job.error_message
    assert "missing on the target" in job.error_message
    assert job.completed_at is not None


def test_a_missing_target_table_fails_the_job_naming_it(target, table_pair) -> None:
    mapping = table_pair("id text PRIMARY KEY, v int", "id text PRIMARY KEY, v int")
    target.execute(f"DROP TABLE public.{mapping.name}")

    job = run(mapping)

    assert job.status == JobStatus.FAILED
    assert f"public.{mapping.name} does not exist" in job.error_message


def test_an_unreachable_target_fails_the_job_saying_so(users) -> None:
    job = create_job(users, ValidationStrategy.CHECKSUM)
    unreachable = dict(vars(settings.target))
    unreachable["database_url"] = "postgres://cdcrecon@127.0.0.1:1/nowhere"
    from cdcrecon.conf import TargetSettings

    with override_settings(TARGET=TargetSettings(**unreachable)):
        run_in_process(job)

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "Target PostgreSQL is unreachable" in job.error_message


def test_row_count_compares_counts_without_row_mismatches(cassandra, target, users) -> None:
    for i in range(10, 15):
        insert_cassandra(cassandra, users.name, (f"user-{i}", "x", i, NOW))

    job = run(users, ValidationStrategy.ROW_COUNT)

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert (job.cassandra_row_count, job.postgres_row_count) == (15, 10)
    assert job.mismatch_count == 5
    assert job.drift_percentage == pytest.approx(100 * 5 / 15)
    assert not Mismatch.objects.filter(job=job).exists()


def test_timestamp_range_compares_only_rows_in_the_window_on_either_side(
    cassandra, target, table_pair
) -> None:
    mapping = table_pair(USERS_CASSANDRA, USERS_POSTGRES)
    table = mapping.name
    old = NOW - dt.timedelta(days=3)
    inside = NOW - dt.timedelta(minutes=10)
    insert_both(cassandra, target, table, [("old-same", "a", 1, old), ("new-same", "b", 2, inside)])
    # Different, but outside the window on both sides: not examined.
    insert_cassandra(cassandra, table, ("old-diff", "a", 1, old))
    insert_postgres(target, table, ("old-diff", "z", 1, old))
    # Updated in the window on Cassandra; the target still has the old version.
    insert_cassandra(cassandra, table, ("lagging", "new", 1, inside))
    insert_postgres(target, table, ("lagging", "old", 1, old))
    # In the window on Cassandra only.
    insert_cassandra(cassandra, table, ("new-missing", "c", 3, inside))

    job = run(
        mapping,
        ValidationStrategy.TIMESTAMP_RANGE,
        window_from=NOW - dt.timedelta(hours=1),
        window_to=NOW,
    )

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert mismatches(job) == {
        "lagging": MismatchType.DATA_MISMATCH,
        "new-missing": MismatchType.MISSING_IN_POSTGRES,
    }
    assert job.keys_examined == 3
    assert job.drift_percentage == pytest.approx(100 * 2 / 3)
    assert job.parameters == {"from": "2025-11-25T09:00:00Z", "to": "2025-11-25T10:00:00Z"}


def test_timestamp_range_records_the_default_window_it_used(users) -> None:
    before = dt.datetime.now(dt.UTC)

    job = run(users, ValidationStrategy.TIMESTAMP_RANGE)

    assert job.status == JobStatus.COMPLETED, job.error_message
    window_from = dt.datetime.fromisoformat(job.parameters["from"].replace("Z", "+00:00"))
    window_to = dt.datetime.fromisoformat(job.parameters["to"].replace("Z", "+00:00"))
    assert window_to >= before
    span = settings.reconciliation.interval_minutes
    assert dt.timedelta(minutes=span) < window_to - window_from <= dt.timedelta(minutes=span + 15)
    assert job.keys_examined == 0  # NOW is days ago: nothing in the last hour


def test_sample_of_a_small_table_examines_every_key_and_gives_an_interval(target, users) -> None:
    target.execute(f"DELETE FROM public.{users.name} WHERE id = 'user-4'")

    job = run(users, ValidationStrategy.SAMPLE, sample_size=50)

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert job.keys_examined == 10
    assert mismatches(job) == {"user-4": MismatchType.MISSING_IN_POSTGRES}
    assert job.drift_percentage == pytest.approx(10.0)
    assert job.drift_ci_low < 10.0 < job.drift_ci_high
    assert job.drift_ci_low == pytest.approx(1.79, abs=0.01)
    assert job.drift_ci_high == pytest.approx(40.42, abs=0.01)


def test_sample_of_a_large_table_looks_up_random_keys_on_both_sides(
    cassandra, target, table_pair
) -> None:
    mapping = table_pair("id int PRIMARY KEY, v text", "id int PRIMARY KEY, v text")
    table = mapping.name
    insert = cassandra.prepare(f"INSERT INTO {table} (id, v) VALUES (?, ?)")
    from cassandra.concurrent import execute_concurrent_with_args

    execute_concurrent_with_args(cassandra, insert, [(i, f"v{i}") for i in range(2000)])
    with target.cursor().copy(f"COPY public.{table} (id, v) FROM STDIN") as copy:
        for i in range(2000):
            # Every fourth row differs on the target: a true drift of 25%.
            copy.write_row((i, f"v{i}" if i % 4 else "changed"))
    target.execute(f"ANALYZE public.{table}")

    job = run(mapping, ValidationStrategy.SAMPLE, sample_size=400)

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert 250 <= job.keys_examined <= 400
    assert job.mismatch_count == Mismatch.objects.filter(job=job).count()
    assert set(mismatches(job).values()) == {MismatchType.DATA_MISMATCH}
    assert all(int(key) % 4 == 0 for key in mismatches(job))
    assert job.drift_ci_low <= job.drift_percentage <= job.drift_ci_high
    assert job.drift_ci_low < 25.0 < job.drift_ci_high
    assert job.cassandra_row_count is None


def wait_for_progress(job: ReconciliationJob, at_least: float, timeout: float = 30) -> None:
    """Wait (in a helper thread, on its own connection) until the job got that far."""
    deadline = time.monotonic() + timeout
    try:
        while ReconciliationJob.objects.get(pk=job.pk).progress < at_least:
            assert time.monotonic() < deadline, "the job never got there"
            time.sleep(0.02)
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_difference_that_heals_within_the_recheck_delay_is_transient(target, users) -> None:
    table = users.name
    target.execute(f"UPDATE public.{table} SET email = 'stale' WHERE id = 'user-5'")
    target.execute(f"DELETE FROM public.{table} WHERE id = 'user-6'")
    job = create_job(users, ValidationStrategy.CHECKSUM)

    def catch_up() -> None:
        # The CDC pipeline delivers user-5's update while the job waits to re-check.
        wait_for_progress(job, 0.9)
        target.execute(f"UPDATE public.{table} SET email = 'u5@example.com' WHERE id = 'user-5'")

    worker = threading.Thread(target=catch_up)
    with _recheck_delay(2.0):
        worker.start()
        run_in_process(job)
    worker.join(timeout=10)

    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert job.transient_count == 1, (
        job.status,
        job.error_message,
        job.mismatch_count,
        job.progress,
    )
    assert job.mismatch_count == 1
    assert mismatches(job) == {"user-6": MismatchType.MISSING_IN_POSTGRES}
    assert job.drift_percentage == pytest.approx(10.0)


def test_without_a_recheck_delay_nothing_is_transient(target, users) -> None:
    target.execute(f"UPDATE public.{users.name} SET email = 'stale' WHERE id = 'user-5'")

    job = run(users)

    assert job.transient_count == 0
    assert mismatches(job) == {"user-5": MismatchType.DATA_MISMATCH}


def test_a_job_that_is_not_running_is_left_alone(users) -> None:
    job = create_job(users, ValidationStrategy.CHECKSUM)
    job.mark_failed("cancelled")

    run_in_process(job)

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.error_message == "cancelled"


@pytest.mark.django_db(transaction=True)
def test_an_interrupt_marks_the_job_failed_and_propagates(target, users) -> None:
    target.execute(f"UPDATE public.{users.name} SET email = 'stale' WHERE id = 'user-5'")
    job = create_job(users, ValidationStrategy.CHECKSUM)

    def press_ctrl_c() -> None:
        wait_for_progress(job, 0.9)  # the job now sleeps before its re-check
        _thread.interrupt_main()

    worker = threading.Thread(target=press_ctrl_c)
    with _recheck_delay(10.0), pytest.raises(KeyboardInterrupt):
        worker.start()
        run_in_process(job)
    worker.join(timeout=10)

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error_message == "Interrupted."


def _recheck_delay(seconds: float):
    import dataclasses

    changed = dataclasses.replace(settings.reconciliation, recheck_delay_seconds=seconds)
    return override_settings(RECONCILIATION=changed)


def test_many_mismatches_are_written_in_batches(cassandra, target, table_pair) -> None:
    mapping = table_pair("id uuid PRIMARY KEY, v int", "id uuid PRIMARY KEY, v int")
    insert = cassandra.prepare(f"INSERT INTO {mapping.name} (id, v) VALUES (?, ?)")
    from cassandra.concurrent import execute_concurrent_with_args

    execute_concurrent_with_args(cassandra, insert, [(uuid.uuid4(), i) for i in range(2500)])

    job = run(mapping)

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert job.mismatch_count == 2500
    assert Mismatch.objects.filter(job=job, mismatch_type="MISSING_IN_POSTGRES").count() == 2500
    assert job.drift_percentage == 100.0


def merged(source: list[tuple[int, bytes, bytes]], target: list[tuple[int, bytes, bytes]]):
    from reconciliation.engine.merge import PassCounts, merge_by_token
    from reconciliation.engine.spill import Spool

    counts = PassCounts()
    with Spool() as differences:
        # Source records carry their raw write-time summary (none here).
        merge_by_token(iter([(*r, None) for r in source]), iter(target), differences, counts)
        found = sorted((d[:3] for d in differences.records()), key=repr)
    return found, (counts.cassandra_rows, counts.postgres_rows, counts.keys)


def test_the_merge_pairs_rows_by_key_within_a_token_and_reports_each_side() -> None:
    source = [(1, b"a", b"1"), (5, b"b", b"1"), (5, b"c", b"1"), (7, b"d", b"1"), (9, b"x", b"1")]
    target = [(0, b"z", b"1"), (5, b"c", b"2"), (5, b"b", b"1"), (7, b"e", b"1"), (8, b"y", b"1")]

    found, counts = merged(source, target)

    assert found == sorted(
        [
            (b"a", b"1", ()),  # token 1: only in the source
            (b"c", b"1", (b"2",)),  # token 5: a clustering row that differs
            (b"d", b"1", ()),  # token 7: a collision of two different keys
            (b"e", None, (b"1",)),
            (b"x", b"1", ()),  # after the target's last token
            (b"y", None, (b"1",)),
            (b"z", None, (b"1",)),  # before the source's first token
        ],
        key=repr,
    )
    assert counts == (5, 5, 8)


def test_the_merge_reports_a_key_the_target_holds_twice() -> None:
    found, counts = merged([(3, b"k", b"1")], [(3, b"k", b"1"), (3, b"k", b"1")])

    assert found == [(b"k", b"1", (b"1", b"1"))]
    assert counts == (1, 2, 1)


def test_an_unreachable_target_fails_the_run_saying_why(cassandra, users) -> None:
    import psycopg

    from reconciliation.connections import consistency_level
    from reconciliation.engine import Engine, Options
    from reconciliation.jobs import describe_failure

    def gone() -> psycopg.Connection:
        return psycopg.connect("postgres://cdcrecon@127.0.0.1:1/warehouse_test_gone")

    with pytest.raises(Exception) as raised:
        Engine(users.spec, cassandra, gone, Options(consistency=consistency_level()), print).run(
            ValidationStrategy.CHECKSUM
        )

    assert describe_failure(raised.value).startswith("Target PostgreSQL is unreachable")


def test_a_wide_partition_is_streamed_and_exactly_its_planted_differences_found(
    cassandra, target, table_pair, monkeypatch
) -> None:
    from cassandra.concurrent import execute_concurrent_with_args

    from reconciliation.engine import merge

    # The same code path as a partition of millions of rows, at a size a test can afford.
    monkeypatch.setattr(merge, "GROUP_IN_MEMORY", 50)
    monkeypatch.setattr(merge, "WIDE_RUN_SIZE", 120)
    columns = "p int, c int, v text, PRIMARY KEY (p, c)"
    mapping = table_pair(columns, columns)
    table = mapping.name
    rows = [(0, c, f"v{c}") for c in range(600)] + [(1, c, "small") for c in range(3)]
    insert = cassandra.prepare(f"INSERT INTO {table} (p, c, v) VALUES (?, ?, ?)")
    execute_concurrent_with_args(cassandra, insert, rows, concurrency=64)
    with target.cursor().copy(f"COPY public.{table} (p, c, v) FROM STDIN") as copy:
        for p, c, v in rows:
            if c != 5 or p != 0:
                copy.write_row((p, c, "changed" if (p, c) == (0, 300) else v))
        copy.write_row((0, 10_000, "extra"))

    # Re-checked by key too (the default configuration re-checks after a delay).
    delayed = dataclasses.replace(settings.reconciliation, recheck_delay_seconds=0.01)
    with override_settings(RECONCILIATION=delayed):
        job = run(mapping)

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert mismatches(job) == {
        '["0","5"]': MismatchType.MISSING_IN_POSTGRES,
        '["0","300"]': MismatchType.DATA_MISMATCH,
        '["0","10000"]': MismatchType.MISSING_IN_CASSANDRA,
    }
    assert (job.cassandra_row_count, job.postgres_row_count, job.keys_examined) == (603, 603, 604)
    assert job.transient_count == 0
