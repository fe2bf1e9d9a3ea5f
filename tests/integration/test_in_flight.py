"""Lag-aware verdicts through real Cassandra and PostgreSQL: a difference whose source row is
younger than the table's CDC lag budget is in flight (not drift, no alert) until a later
re-check settles it: healed, drift, or expired."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

import pytest
from django.core.management import call_command
from django.utils import timezone

from reconciliation.choices import (
    AlertLevel,
    JobStatus,
    MismatchType,
    RecheckRule,
    ResolutionStatus,
    ValidationStrategy,
)
from reconciliation.jobs import build_parameters, create_job, run_in_process
from reconciliation.ledger import inflight
from reconciliation.models import Mismatch, ReconciliationJob
from tests.support import latest_event, wait_until

COLUMNS = "id text PRIMARY KEY, email text, updated_at timestamp"
POSTGRES = "id text PRIMARY KEY, email text, updated_at timestamptz"
HOURS_AGO = 3
# Each row's updated_at (the same on both sides; within TIMESTAMP_RANGE's default window).
STAMP = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)).replace(microsecond=0)


def micros(when: float) -> int:
    return int(when * 1_000_000)


def write(cassandra, table: str, key: str, email: str, *, ago: float = 0.0, ttl: int = 0):
    """A Cassandra write made ``ago`` seconds ago (USING TIMESTAMP), with a TTL if given."""
    using = f"USING TIMESTAMP {micros(time.time() - ago)}" + (f" AND TTL {ttl}" if ttl else "")
    cassandra.execute(
        f"INSERT INTO {table} (id, email, updated_at) VALUES (%s, %s, %s) {using}",
        (key, email, STAMP),
    )


def copy(target, table: str, key: str, email: str) -> None:
    """What the CDC pipeline writes to the target."""
    target.execute(
        f"INSERT INTO public.{table} VALUES (%s, %s, %s) "
        "ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email",
        (key, email, STAMP),
    )


@pytest.fixture
def table(cassandra, target, table_pair):
    """Ten equal rows written hours ago, on a table whose CDC lag budget is 60 s and whose
    critical threshold is 5%."""
    mapping = table_pair(COLUMNS, POSTGRES, cdc_lag_budget_seconds=60, critical_threshold=5.0)
    for i in range(10):
        write(cassandra, mapping.name, f"user-{i}", f"u{i}@example.com", ago=HOURS_AGO * 3600)
        copy(target, mapping.name, f"user-{i}", f"u{i}@example.com")
    return mapping


def run(mapping, strategy: str = ValidationStrategy.CHECKSUM, **options) -> ReconciliationJob:
    job = create_job(mapping, strategy, parameters=build_parameters(strategy, **options))
    run_in_process(job)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error_message
    return job


def statuses(mapping) -> dict[str, str]:
    return dict(
        Mismatch.objects.filter(table_name=mapping.name).values_list(
            "primary_key_value", "resolution_status"
        )
    )


def test_fresh_writes_the_target_lacks_are_in_flight_not_drift_then_heal_or_become_drift(
    cassandra, target, table, client
) -> None:
    name = table.name
    write(cassandra, name, "late", "late@example.com")  # the pipeline will copy it
    write(cassandra, name, "never", "never@example.com")  # lost by the pipeline
    write(cassandra, name, "user-3", "new3@example.com")  # an update not copied yet

    job = run(table)

    assert job.recheck_rule == RecheckRule.WRITE_TIME and job.lag_budget_seconds == 60
    assert (job.in_flight_count, job.mismatch_count, job.expired_count) == (3, 0, 0)
    assert job.drift_percentage == 0.0
    assert job.alert_level == AlertLevel.NONE and job.alert_fired is False
    assert statuses(table) == dict.fromkeys(["late", "never", "user-3"], ResolutionStatus.IN_FLIGHT)
    late = Mismatch.objects.get(table_name=name, primary_key_value="late")
    written = late.source_write_time.timestamp()
    assert abs(written - time.time()) < 60
    assert late.recheck_after.timestamp() == pytest.approx(written + 60 + 2, abs=0.01)
    assert late.mismatch_type == MismatchType.MISSING_IN_POSTGRES

    # The pipeline catches up on two of them; the re-check comes once the budget has passed.
    copy(target, name, "late", "late@example.com")
    copy(target, name, "user-3", "new3@example.com")
    assert inflight.recheck_due().healed == 0  # not due yet: nothing read
    settled = inflight.recheck_due(now=timezone.now() + dt.timedelta(seconds=70))

    assert (settled.healed, settled.drift, settled.expired) == (2, 1, 0)
    assert statuses(table) == {
        "late": ResolutionStatus.AUTO_RESOLVED,
        "user-3": ResolutionStatus.AUTO_RESOLVED,
        "never": ResolutionStatus.PENDING,
    }
    assert (
        "arrived within the CDC lag"
        in latest_event(Mismatch.objects.get(table_name=name, primary_key_value="late")).reason
    )
    never = Mismatch.objects.get(table_name=name, primary_key_value="never")
    assert never.recheck_after is None and "drift" in latest_event(never).reason
    job.refresh_from_db()
    assert (job.transient_count, job.mismatch_count, job.in_flight_count) == (2, 1, 3)
    assert job.drift_percentage == pytest.approx(100 / 12)
    assert job.alert_level == AlertLevel.CRITICAL and job.alert_fired is True
    # Prometheus counts only the one that became drift, never the two that arrived late.
    from tests.monitoring_support import parse_samples, sample

    samples = parse_samples(client.get("/metrics").content.decode())
    total = "cdc_reconciliation_mismatches_total"
    assert sample(samples, total, table=name, type=MismatchType.MISSING_IN_POSTGRES) == 1
    assert sample(samples, total, table=name, type=MismatchType.DATA_MISMATCH) == 0
    drift = sample(samples, "cdc_reconciliation_drift_percentage", table=name, strategy="CHECKSUM")
    assert drift == pytest.approx(100 / 12)


def test_rows_written_hours_ago_are_drift_at_once(cassandra, table) -> None:
    write(cassandra, table.name, "old", "old@example.com", ago=HOURS_AGO * 3600)

    job = run(table)

    assert job.recheck_rule == RecheckRule.WRITE_TIME
    assert (job.in_flight_count, job.mismatch_count) == (0, 1)
    assert statuses(table) == {"old": ResolutionStatus.PENDING}
    assert job.alert_level == AlertLevel.CRITICAL  # 1 of 11 keys


@pytest.mark.parametrize(
    ("strategy", "options"),
    [
        (ValidationStrategy.TIMESTAMP_RANGE, {}),  # the default window ends now
        (ValidationStrategy.SAMPLE, {"sample_size": 100}),
    ],
)
def test_every_key_by_key_strategy_judges_by_write_time(
    cassandra, table, strategy: str, options
) -> None:
    write(cassandra, table.name, "fresh", "f@example.com")

    job = run(table, strategy, **options)

    assert job.recheck_rule == RecheckRule.WRITE_TIME
    assert (job.in_flight_count, job.mismatch_count) == (1, 0)
    assert statuses(table) == {"fresh": ResolutionStatus.IN_FLIGHT}


def test_a_row_whose_ttl_runs_out_before_its_recheck_is_not_a_difference(cassandra, table) -> None:
    write(cassandra, table.name, "session", "s@example.com", ttl=5)  # gone before 60 s pass

    job = run(table)

    assert (job.expired_count, job.in_flight_count, job.mismatch_count) == (1, 0, 0)
    assert statuses(table) == {}


def test_a_row_in_flight_that_expires_before_the_recheck_is_closed_as_expired(
    cassandra, target, table_pair
) -> None:
    mapping = table_pair(COLUMNS, POSTGRES, cdc_lag_budget_seconds=3)
    write(cassandra, mapping.name, "short", "s@example.com", ttl=8)  # expires after the re-check

    job = run(mapping)
    assert (job.in_flight_count, job.expired_count) == (1, 0)
    wait_until(lambda: not cassandra.execute(f"SELECT id FROM {mapping.name}").one(), 20, "no TTL")

    settled = inflight.recheck_due(now=timezone.now() + dt.timedelta(seconds=10))

    assert (settled.expired, settled.drift, settled.healed) == (1, 0, 0)
    closed = Mismatch.objects.get(table_name=mapping.name, primary_key_value="short")
    assert closed.resolution_status == ResolutionStatus.AUTO_RESOLVED
    assert "TTL ran out" in latest_event(closed).reason
    job.refresh_from_db()
    assert (job.expired_count, job.mismatch_count) == (1, 0)


@pytest.mark.parametrize(
    ("cassandra_columns", "postgres_columns", "insert"),
    [
        ("id text PRIMARY KEY", "id text PRIMARY KEY", "INSERT INTO {} (id) VALUES ('new')"),
        (
            "id text PRIMARY KEY, tags set<text>",
            "id text PRIMARY KEY, tags text[]",
            "INSERT INTO {} (id, tags) VALUES ('new', {{'a'}})",
        ),
    ],
    ids=["key-only", "collections-only"],
)
def test_a_table_without_readable_write_times_keeps_the_fixed_delay(
    cassandra, table_pair, settings, cassandra_columns, postgres_columns, insert
) -> None:
    settings.RECONCILIATION = dataclasses.replace(
        settings.RECONCILIATION, recheck_delay_seconds=0.05
    )
    mapping = table_pair(cassandra_columns, postgres_columns, cdc_lag_budget_seconds=60)
    cassandra.execute(insert.format(mapping.name))

    job = run(mapping)

    assert job.recheck_rule == RecheckRule.FIXED_DELAY and job.lag_budget_seconds is None
    assert (job.in_flight_count, job.mismatch_count) == (0, 1)  # re-read after the delay
    assert statuses(mapping) == {"new": ResolutionStatus.PENDING}


def test_a_later_run_that_finds_the_key_in_flight_again_keeps_one_row(cassandra, table) -> None:
    write(cassandra, table.name, "fresh", "f@example.com")
    first = run(table)
    second = run(table)

    rows = Mismatch.objects.filter(table_name=table.name, primary_key_value="fresh")
    assert rows.count() == 1
    row = rows.get()
    assert row.resolution_status == ResolutionStatus.IN_FLIGHT
    assert (row.times_seen, row.job_id, row.last_job_id) == (2, first.pk, second.pk)


def test_a_later_run_that_finds_an_in_flight_key_equal_closes_it(cassandra, target, table) -> None:
    write(cassandra, table.name, "fresh", "f@example.com")
    run(table)
    copy(target, table.name, "fresh", "f@example.com")

    run(table)

    assert statuses(table) == {"fresh": ResolutionStatus.AUTO_RESOLVED}


def test_reconcile_in_this_process_leaves_nothing_in_flight(
    cassandra, target, table_pair, capsys
) -> None:
    mapping = table_pair(COLUMNS, POSTGRES, cdc_lag_budget_seconds=2)
    write(cassandra, mapping.name, "lost", "l@example.com")

    call_command("reconcile", mapping.name)

    job = ReconciliationJob.objects.get(table_name=mapping.name)
    assert (job.in_flight_count, job.mismatch_count) == (1, 1)
    assert statuses(mapping) == {"lost": ResolutionStatus.PENDING}
    assert "in flight 1" in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_a_job_on_a_worker_queues_its_own_in_flight_recheck(
    celery_worker_process, cassandra, target, table_pair, api_client
) -> None:
    mapping = table_pair(COLUMNS, POSTGRES, cdc_lag_budget_seconds=2)
    write(cassandra, mapping.name, "lost", "l@example.com")
    client = api_client(superuser=True)
    response = client.post(
        "/reconciliation/trigger",
        {"tables": [mapping.name], "validation_strategy": "CHECKSUM"},
        format="json",
    )
    (job_id,) = response.json()["job_ids"]

    def settled() -> bool:
        return statuses(mapping) == {"lost": ResolutionStatus.PENDING}

    wait_until(settled, 60, "the worker never re-checked the in-flight difference")
    job = ReconciliationJob.objects.get(pk=job_id)
    assert (job.in_flight_count, job.mismatch_count, job.status) == (1, 1, JobStatus.COMPLETED)


def test_in_flight_differences_are_visible_in_the_api_the_metrics_and_the_admin(
    cassandra, table, api_client, client, admin_client
) -> None:
    from tests.monitoring_support import parse_samples, sample

    write(cassandra, table.name, "fresh", "f@example.com")
    write(cassandra, table.name, "old", "o@example.com", ago=HOURS_AGO * 3600)
    job = run(table)
    api = api_client(superuser=True)

    body = api.get(f"/reconciliation/jobs/{job.pk}").json()
    assert (body["in_flight_count"], body["mismatch_count"], body["expired_count"]) == (1, 1, 0)
    assert (body["recheck_rule"], body["lag_budget_seconds"]) == ("WRITE_TIME", 60.0)
    listed = api.get(
        f"/reconciliation/mismatches?table={table.name}&resolution_status=IN_FLIGHT"
    ).json()
    (fresh,) = listed["mismatches"]
    assert fresh["primary_key_value"] == "fresh" and fresh["resolution_status"] == "IN_FLIGHT"
    assert fresh["recheck_after"] > fresh["source_write_time"]
    assert fresh["source_ttl_seconds"] is None

    def scrape():
        return parse_samples(client.get("/metrics").content.decode())

    name = "cdc_reconciliation"
    samples = scrape()
    assert sample(samples, f"{name}_in_flight_differences", table=table.name) == 1
    kind = "MISSING_IN_POSTGRES"
    assert sample(samples, f"{name}_open_mismatches", table=table.name, type=kind) == 1  # old
    assert sample(samples, f"{name}_mismatches_total", table=table.name, type=kind) == 1

    row = Mismatch.objects.get(table_name=table.name, primary_key_value="fresh")
    page = admin_client.get(f"/admin/reconciliation/mismatch/{row.pk}/change/").content.decode()
    assert "cdc-in_flight" in page and "In flight (within the CDC lag budget)" in page
    assert f"{row.source_write_time:%Y}" in page and "does not expire" in page
    job_page = admin_client.get(
        f"/admin/reconciliation/reconciliationjob/{job.pk}/change/"
    ).content.decode()
    assert "CDC lag budget 60 s" in job_page

    inflight.recheck_due(now=timezone.now() + dt.timedelta(seconds=70))  # it never arrives

    samples = scrape()
    assert sample(samples, f"{name}_in_flight_differences", table=table.name) == 0
    assert sample(samples, f"{name}_open_mismatches", table=table.name, type=kind) == 2
    assert sample(samples, f"{name}_mismatches_total", table=table.name, type=kind) == 2


def test_re_check_now_keeps_an_in_flight_difference_in_flight_until_its_budget_passes(
    cassandra, target, table, admin_user
) -> None:
    from reconciliation.ledger.reads import recheck

    write(cassandra, table.name, "fresh", "f@example.com")
    run(table)
    row = Mismatch.objects.get(table_name=table.name, primary_key_value="fresh")

    assert recheck(row, admin_user) == "still_different"
    row.refresh_from_db()
    assert row.resolution_status == ResolutionStatus.IN_FLIGHT

    copy(target, table.name, "fresh", "f@example.com")
    assert recheck(row, admin_user) == "closed"
    row.refresh_from_db()
    assert row.resolution_status == ResolutionStatus.AUTO_RESOLVED
