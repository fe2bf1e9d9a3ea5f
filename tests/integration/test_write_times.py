"""Each difference stores its source row's write time and remaining TTL, read in the same
pass: every strategy, in this process and through a real Celery worker, and the lookups
(the re-check)."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from reconciliation.choices import JobStatus, RecheckRule, ValidationStrategy
from reconciliation.jobs import build_parameters, create_job, run_in_process
from reconciliation.ledger.reads import read_now
from reconciliation.models import Mismatch, ReconciliationJob
from tests.support import wait_until

CASSANDRA = "id text PRIMARY KEY, email text, tags set<text>, updated_at timestamp"
POSTGRES = "id text PRIMARY KEY, email text, tags text[], updated_at timestamptz"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
UPDATED = dt.datetime(2025, 11, 25, 10, 0, tzinfo=dt.UTC)
OLD = dt.datetime(2025, 11, 25, 9, 0, tzinfo=dt.UTC)
MISSING_WRITTEN = dt.datetime(2025, 11, 25, 9, 30, 0, 123456, tzinfo=dt.UTC)
CHANGED_WRITTEN = dt.datetime(2025, 11, 25, 9, 45, tzinfo=dt.UTC)
DAY = 86_400


def micros(when: dt.datetime) -> int:
    delta = when - EPOCH
    return (delta.days * DAY + delta.seconds) * 1_000_000 + delta.microseconds


def plant(cassandra, table: str, key: str, email: str, *, written: dt.datetime, ttl: int = 0):
    using = f"USING TIMESTAMP {micros(written)}" + (f" AND TTL {ttl}" if ttl else "")
    cassandra.execute(
        f"INSERT INTO {table} (id, email, tags, updated_at) VALUES (%s, %s, {{'a'}}, %s) {using}",
        (key, email, UPDATED),
    )


def copy(target, table: str, key: str, email: str) -> None:
    target.execute(
        f"INSERT INTO public.{table} VALUES (%s, %s, ARRAY['a'], %s)", (key, email, UPDATED)
    )


@pytest.fixture
def planted(cassandra, target, table_pair):
    """Eight equal rows; one missing in the target (with a TTL), one changed in the target,
    one only in the target."""
    mapping = table_pair(CASSANDRA, POSTGRES)
    table = mapping.name
    for i in range(8):
        plant(cassandra, table, f"user-{i}", f"u{i}@example.com", written=OLD)
        copy(target, table, f"user-{i}", f"u{i}@example.com")
    plant(cassandra, table, "missing", "m@example.com", written=MISSING_WRITTEN, ttl=DAY)
    plant(cassandra, table, "changed", "c@example.com", written=CHANGED_WRITTEN)
    copy(target, table, "changed", "stale@example.com")
    copy(target, table, "extra", "x@example.com")
    return mapping


def assert_write_times_stored(job: ReconciliationJob) -> None:
    assert job.status == JobStatus.COMPLETED, job.error_message
    found = {m.primary_key_value: m for m in Mismatch.objects.filter(job=job)}
    assert set(found) == {"missing", "changed", "extra"}
    assert found["missing"].source_write_time == MISSING_WRITTEN
    assert DAY - 600 < found["missing"].source_ttl_seconds <= DAY
    assert found["changed"].source_write_time == CHANGED_WRITTEN
    assert found["changed"].source_ttl_seconds is None  # written without a TTL
    assert found["extra"].source_write_time is None  # not in Cassandra
    assert found["extra"].source_ttl_seconds is None


@pytest.mark.parametrize(
    ("strategy", "options"),
    [
        (ValidationStrategy.CHECKSUM, {}),
        (
            ValidationStrategy.TIMESTAMP_RANGE,
            {"window_from": UPDATED - dt.timedelta(hours=1), "window_to": UPDATED.replace(hour=11)},
        ),
        (ValidationStrategy.SAMPLE, {"sample_size": 50}),  # no larger than the sample: whole
    ],
)
def test_every_strategy_stores_the_source_write_time_and_ttl_of_each_difference(
    planted, strategy: str, options
) -> None:
    job = create_job(planted, strategy, parameters=build_parameters(strategy, **options))
    run_in_process(job)
    job.refresh_from_db()

    assert_write_times_stored(job)
    assert job.recheck_rule == RecheckRule.NONE  # the suite's budget and delay are 0
    assert job.lag_budget_seconds is None


def test_a_random_sample_stores_the_write_times_it_looked_up(cassandra, target, table_pair) -> None:
    mapping = table_pair(CASSANDRA, POSTGRES)
    for i in range(60):  # every row changed in the target: any drawn key differs
        plant(cassandra, mapping.name, f"user-{i}", "u@example.com", written=MISSING_WRITTEN)
        copy(target, mapping.name, f"user-{i}", "stale@example.com")

    job = create_job(mapping, "SAMPLE", parameters=build_parameters("SAMPLE", sample_size=10))
    run_in_process(job)
    job.refresh_from_db()

    assert job.status == JobStatus.COMPLETED, job.error_message
    found = list(Mismatch.objects.filter(job=job))
    assert 0 < len(found) < 60  # a random sample, not the whole table
    assert {m.source_write_time for m in found} == {MISSING_WRITTEN}


def test_the_recheck_reads_the_write_time_again(planted) -> None:
    finding = read_now(planted.name, "missing")

    assert finding is not None
    assert finding.source_write_time == micros(MISSING_WRITTEN)
    assert DAY - 600 < finding.source_ttl <= DAY
    assert read_now(planted.name, "user-1") is None


def test_a_wide_partition_spilled_to_disk_keeps_each_rows_write_time(
    cassandra, target, table_pair, monkeypatch
) -> None:
    from reconciliation.engine import merge

    monkeypatch.setattr(merge, "GROUP_IN_MEMORY", 3)  # any partition wider than 3 spills
    mapping = table_pair(
        "pk text, ck int, email text, PRIMARY KEY (pk, ck)",
        "pk text, ck int, email text, PRIMARY KEY (pk, ck)",
    )
    for ck in range(10):
        written = OLD + dt.timedelta(minutes=ck)
        cassandra.execute(
            f"INSERT INTO {mapping.name} (pk, ck, email) VALUES ('p', %s, 'e') "
            f"USING TIMESTAMP {micros(written)}",
            (ck,),
        )
        if ck % 3:
            target.execute(f"INSERT INTO public.{mapping.name} VALUES ('p', %s, 'e')", (ck,))

    job = create_job(mapping, ValidationStrategy.CHECKSUM)
    run_in_process(job)

    found = dict(
        Mismatch.objects.filter(job=job).values_list("primary_key_value", "source_write_time")
    )
    assert found == {
        f'["p","{ck}"]': OLD + dt.timedelta(minutes=ck) for ck in range(10) if ck % 3 == 0
    }


@pytest.mark.django_db(transaction=True)
def test_a_job_on_a_celery_worker_stores_the_write_times_its_segments_read(
    celery_worker_process, planted, api_client
) -> None:
    client = api_client(superuser=True)
    response = client.post(
        "/reconciliation/trigger",
        {"tables": [planted.name], "validation_strategy": "CHECKSUM"},
        format="json",
    )
    assert response.status_code == 202, response.json()
    (job_id,) = response.json()["job_ids"]

    def finished() -> ReconciliationJob | None:
        job = ReconciliationJob.objects.get(pk=job_id)
        return job if job.status != JobStatus.RUNNING else None

    job = wait_until(finished, 120, f"job {job_id} is still RUNNING")
    assert job.segments.filter(difference_count__gt=0).exists()  # through the segments
    assert_write_times_stored(job)
    time.sleep(0)  # nothing in flight to wait for: the suite's budget is 0
