"""/metrics serves the reconciliation metrics read from the database at scrape time.

Jobs are written to the test database by this process and by a separate Django process
(standing in for a Celery worker on another machine); the values at /metrics must be the
same either way, because the collector reads the rows, not in-process counters.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from reconciliation import metrics, metrics_snapshot
from reconciliation.choices import JobStatus, MismatchType, ValidationStrategy
from reconciliation.models import Mismatch, ReconciliationJob, TableMapping
from tests.monitoring_support import Samples, parse_samples, sample
from tests.support import run_django_code

P = "cdc_reconciliation"


def scrape(client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    return parse_samples(response.content.decode())


def mapping(name: str, **fields) -> TableMapping:
    return TableMapping.objects.create(
        name=name,
        cassandra_keyspace="ks",
        cassandra_table=name,
        postgres_schema="public",
        postgres_table=name,
        **fields,
    )


def job(table: str, status: str, started_ago: timedelta, seconds: float | None, **fields):
    started = timezone.now() - started_ago
    counts = [fields.get("cassandra_row_count") or 0, fields.get("postgres_row_count") or 0]
    fields.setdefault("keys_examined", max(counts) or None)  # a CHECKSUM examines every key
    fields.setdefault("validation_strategy", ValidationStrategy.CHECKSUM)
    return ReconciliationJob.objects.create(
        table_name=table,
        status=status,
        started_at=started,
        completed_at=None if seconds is None else started + timedelta(seconds=seconds),
        **fields,
    )


def mismatches(parent: ReconciliationJob, kind: str, n: int) -> None:
    for i in range(n):
        Mismatch.objects.create(
            job=parent,
            table_name=parent.table_name,
            primary_key_value=f"{kind}-{i}",
            mismatch_type=kind,
        )


OTHER_PROCESS = """
from datetime import timedelta
from django.utils import timezone
from reconciliation.models import Mismatch, ReconciliationJob
now = timezone.now()
def job(status, ago, seconds, **fields):
    started = now - timedelta(seconds=ago)
    fields.setdefault("validation_strategy", "ROW_COUNT")
    return ReconciliationJob.objects.create(
        table_name="obs_orders", status=status,
        started_at=started, completed_at=started + timedelta(seconds=seconds), **fields)
done = job("COMPLETED", 4 * 3600, 3 * 3600, drift_percentage=12.5,
           cassandra_row_count=80, postgres_row_count=70, mismatch_count=10)
Mismatch.objects.create(job=done, table_name="obs_orders", primary_key_value="o1",
                        mismatch_type="MISSING_IN_CASSANDRA")
# A SAMPLE afterwards: its own series, and it counts no rows.
job("COMPLETED", 600, 5, validation_strategy="SAMPLE", drift_percentage=2.0, drift_ci_low=0.4,
    drift_ci_high=5.1, keys_examined=100, mismatch_count=2)
job("FAILED", 600, 30, error_message="Cassandra unreachable")
print(done.job_id)
"""


@pytest.mark.django_db(transaction=True)
def test_metrics_show_every_family_with_values_from_the_database(client) -> None:
    mapping("obs_users", warning_threshold=2.5, critical_threshold=10.0)
    mapping("obs_orders")  # default thresholds
    hour = timedelta(hours=1)

    old = job("obs_users", JobStatus.COMPLETED, 3 * hour, 45, drift_percentage=3.0,
              cassandra_row_count=100, postgres_row_count=97, mismatch_count=3)  # fmt: skip
    mismatches(old, MismatchType.MISSING_IN_POSTGRES, 2)
    mismatches(old, MismatchType.DATA_MISMATCH, 1)
    job("obs_users", JobStatus.COMPLETED, 2 * hour, 7200, drift_percentage=1.5,
        cassandra_row_count=150, postgres_row_count=148)  # fmt: skip
    job("obs_users", JobStatus.COMPLETED, hour, 0.5, drift_percentage=0.5,
        cassandra_row_count=200, postgres_row_count=199)  # fmt: skip
    job("obs_users", JobStatus.FAILED, timedelta(minutes=30), 2, error_message="boom")
    job("obs_users", JobStatus.RUNNING, timedelta(minutes=1), None)  # not ended: not counted
    # A table with jobs but no mapping (removed since): gauges and counters, no thresholds.
    job("obs_legacy", JobStatus.COMPLETED, hour, 10, drift_percentage=0.0,
        cassandra_row_count=5, postgres_row_count=5)  # fmt: skip

    # Jobs for obs_orders are written by another process, as a Celery worker would.
    run_django_code(OTHER_PROCESS)

    s = scrape(client)

    # Gauges: the latest COMPLETED job of each table.
    assert sample(s, f"{P}_drift_percentage", table="obs_users", strategy="CHECKSUM") == 0.5
    assert sample(s, f"{P}_cassandra_rows", table="obs_users") == 200
    assert sample(s, f"{P}_postgres_rows", table="obs_users") == 199
    assert sample(s, f"{P}_drift_percentage", table="obs_orders", strategy="ROW_COUNT") == 12.5
    # obs_orders' newer SAMPLE adds its own series and keeps the ROW_COUNT verdict and counts.
    assert sample(s, f"{P}_drift_percentage", table="obs_orders", strategy="SAMPLE") == 2.0
    assert sample(s, f"{P}_drift_ci_low_percentage", table="obs_orders", strategy="SAMPLE") == 0.4
    assert (
        sample(s, f"{P}_drift_ci_low_percentage", table="obs_orders", strategy="ROW_COUNT") == 12.5
    )
    assert sample(s, f"{P}_cassandra_rows", table="obs_orders") == 80
    assert sample(s, f"{P}_postgres_rows", table="obs_orders") == 70
    assert sample(s, f"{P}_drift_percentage", table="obs_legacy", strategy="CHECKSUM") == 0.0

    # Thresholds: per table, else the settings' defaults (1.0 and 5.0).
    assert sample(s, f"{P}_drift_warning_threshold", table="obs_users") == 2.5
    assert sample(s, f"{P}_drift_critical_threshold", table="obs_users") == 10.0
    assert sample(s, f"{P}_drift_warning_threshold", table="obs_orders") == 1.0
    assert sample(s, f"{P}_drift_critical_threshold", table="obs_orders") == 5.0
    assert sample(s, f"{P}_drift_warning_threshold", table="obs_legacy") is None

    # Counters: finished jobs by status, mismatches by type, zeros included.
    jobs = f"{P}_jobs_completed_total"
    assert sample(s, jobs, table="obs_users", status="COMPLETED") == 3
    assert sample(s, jobs, table="obs_users", status="FAILED") == 1
    assert sample(s, jobs, table="obs_orders", status="COMPLETED") == 2
    assert sample(s, jobs, table="obs_orders", status="FAILED") == 1
    assert sample(s, jobs, table="obs_legacy", status="FAILED") == 0
    assert sample(s, jobs, table="obs_users", status="RUNNING") is None
    mm = f"{P}_mismatches_total"
    assert sample(s, mm, table="obs_users", type="MISSING_IN_POSTGRES") == 2
    assert sample(s, mm, table="obs_users", type="DATA_MISMATCH") == 1
    assert sample(s, mm, table="obs_users", type="MISSING_IN_CASSANDRA") == 0
    assert sample(s, mm, table="obs_orders", type="MISSING_IN_CASSANDRA") == 1
    assert sample(s, mm, table="obs_orders", type="DATA_MISMATCH") == 0

    # Histogram of COMPLETED durations: obs_users ran 45 s, 7200 s and 0.5 s.
    bucket = f"{P}_duration_seconds_bucket"
    expected = {"1.0": 1, "5.0": 1, "30.0": 1, "60.0": 2, "3600.0": 2, "7200.0": 3}
    expected |= {"14400.0": 3, "28800.0": 3, "+Inf": 3}
    for le, count in expected.items():
        assert sample(s, bucket, table="obs_users", le=le) == count, le
    assert sample(s, f"{P}_duration_seconds_count", table="obs_users") == 3
    assert sample(s, f"{P}_duration_seconds_sum", table="obs_users") == pytest.approx(7245.5)
    # obs_orders' ROW_COUNT job (another process) ran 3 h: only in the 4 h bucket and up;
    # its SAMPLE ran 5 s.
    assert sample(s, bucket, table="obs_orders", le="1.0") == 0
    assert sample(s, bucket, table="obs_orders", le="7200.0") == 1
    assert sample(s, bucket, table="obs_orders", le="14400.0") == 2
    assert sample(s, f"{P}_duration_seconds_sum", table="obs_orders") == pytest.approx(10805)

    assert sample(s, f"{P}_metrics_up") == 1


@pytest.mark.django_db(transaction=True)
def test_the_next_scrape_sees_a_job_another_process_just_finished(client) -> None:
    mapping("obs_orders")
    before = scrape(client)
    assert sample(before, f"{P}_drift_percentage", table="obs_orders", strategy="ROW_COUNT") is None
    assert sample(before, f"{P}_jobs_completed_total", table="obs_orders", status="FAILED") == 0

    run_django_code(OTHER_PROCESS)

    after = scrape(client)
    assert sample(after, f"{P}_drift_percentage", table="obs_orders", strategy="ROW_COUNT") == 12.5
    assert sample(after, f"{P}_jobs_completed_total", table="obs_orders", status="FAILED") == 1
    assert (
        sample(after, f"{P}_mismatches_total", table="obs_orders", type="MISSING_IN_CASSANDRA") == 1
    )


@pytest.mark.django_db
def test_the_latest_completed_job_wins_over_a_later_failed_or_running_one(client) -> None:
    job("obs_t", JobStatus.COMPLETED, timedelta(hours=2), 5, drift_percentage=7.0,
        cassandra_row_count=10, postgres_row_count=9)  # fmt: skip
    job("obs_t", JobStatus.FAILED, timedelta(hours=1), 5)
    job("obs_t", JobStatus.RUNNING, timedelta(minutes=1), None)

    s = scrape(client)

    assert sample(s, f"{P}_drift_percentage", table="obs_t", strategy="CHECKSUM") == 7.0
    assert sample(s, f"{P}_postgres_rows", table="obs_t") == 9


@pytest.mark.django_db
def test_the_collector_is_registered_once(client) -> None:
    collector = metrics.register()
    assert metrics.register() is collector
    assert metrics.register(REGISTRY) is collector

    text = client.get("/metrics").content.decode()
    assert text.count(f"# TYPE {P}_drift_percentage gauge") == 1
    assert text.count(f"# TYPE {P}_duration_seconds histogram") == 1


@pytest.mark.django_db(transaction=True)
def test_a_database_that_cannot_answer_gives_metrics_up_0_not_a_failed_scrape(
    client, monkeypatch
) -> None:
    import psycopg

    from tests.support import current_database_url

    mapping("obs_users")
    assert sample(scrape(client), f"{P}_metrics_up") == 1
    monkeypatch.setattr(metrics_snapshot, "SCRAPE_STATEMENT_TIMEOUT_MS", 300)
    # Another session holds the job table locked: the scrape's query hits its timeout.
    with psycopg.connect(current_database_url()) as blocker:
        blocker.execute(f"LOCK TABLE {ReconciliationJob._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        s = scrape(client)
        blocker.rollback()

    assert sample(s, f"{P}_metrics_up") == 0
    assert sample(s, f"{P}_drift_warning_threshold", table="obs_users") is None
    assert sample(scrape(client), f"{P}_drift_warning_threshold", table="obs_users") == 1.0
    assert sample(scrape(client), f"{P}_metrics_up") == 1


@pytest.mark.django_db
def test_a_sample_after_a_checksum_leaves_the_checksum_series_and_row_counts_untouched(
    client,
) -> None:
    mapping("obs_sessions")
    job("obs_sessions", JobStatus.COMPLETED, timedelta(hours=2), 30, drift_percentage=6.25,
        cassandra_row_count=4000, postgres_row_count=3900, mismatch_count=250)  # fmt: skip
    before = scrape(client)

    job("obs_sessions", JobStatus.COMPLETED, timedelta(minutes=5), 3, keys_examined=1000,
        validation_strategy=ValidationStrategy.SAMPLE, drift_percentage=3.71,
        drift_ci_low=2.7, drift_ci_high=5.0, mismatch_count=37)  # fmt: skip
    after = scrape(client)

    for s in (before, after):
        assert sample(s, f"{P}_drift_percentage", table="obs_sessions", strategy="CHECKSUM") == 6.25
        assert sample(s, f"{P}_cassandra_rows", table="obs_sessions") == 4000
        assert sample(s, f"{P}_postgres_rows", table="obs_sessions") == 3900
    assert sample(before, f"{P}_drift_percentage", table="obs_sessions", strategy="SAMPLE") is None
    assert sample(after, f"{P}_drift_percentage", table="obs_sessions", strategy="SAMPLE") == 3.71
    low = f"{P}_drift_ci_low_percentage"
    assert sample(after, low, table="obs_sessions", strategy="SAMPLE") == 2.7
    assert sample(after, low, table="obs_sessions", strategy="CHECKSUM") == 6.25


@pytest.mark.django_db
def test_an_inconclusive_job_sets_no_drift_and_keeps_the_last_conclusive_one(client) -> None:
    job("obs_events", JobStatus.COMPLETED, timedelta(hours=3), 5, drift_percentage=2.0,
        validation_strategy=ValidationStrategy.TIMESTAMP_RANGE, keys_examined=50,
        cassandra_row_count=50, postgres_row_count=49)  # fmt: skip
    # A newer window that held no rows: COMPLETED, but examined nothing.
    job("obs_events", JobStatus.COMPLETED, timedelta(minutes=5), 1,
        validation_strategy=ValidationStrategy.TIMESTAMP_RANGE, keys_examined=0,
        drift_percentage=None, cassandra_row_count=0, postgres_row_count=0)  # fmt: skip
    job("obs_empty", JobStatus.COMPLETED, timedelta(minutes=5), 1, keys_examined=0,
        drift_percentage=None, cassandra_row_count=0, postgres_row_count=0)  # fmt: skip

    s = scrape(client)

    drift = f"{P}_drift_percentage"
    assert sample(s, drift, table="obs_events", strategy="TIMESTAMP_RANGE") == 2.0
    assert not [k for k in s if k[0] == drift and ("table", "obs_empty") in k[1]]
    # A window's counts are not the table's: no row-count series from TIMESTAMP_RANGE.
    assert sample(s, f"{P}_cassandra_rows", table="obs_events") is None
    # The empty CHECKSUM counted the (empty) table, so its counts are known.
    assert sample(s, f"{P}_cassandra_rows", table="obs_empty") == 0


@pytest.mark.django_db
def test_open_mismatches_count_pending_differences_once_per_key(client) -> None:
    parent = job("obs_open", JobStatus.COMPLETED, timedelta(hours=1), 5, drift_percentage=1.0,
                 cassandra_row_count=10, postgres_row_count=10)  # fmt: skip
    mismatches(parent, MismatchType.DATA_MISMATCH, 3)
    Mismatch.objects.filter(primary_key_value="DATA_MISMATCH-0").update(
        resolution_status="MANUAL_RESOLVED"
    )

    s = scrape(client)

    kind = MismatchType.DATA_MISMATCH.value
    assert sample(s, f"{P}_open_mismatches", table="obs_open", type=kind) == 2
    assert sample(s, f"{P}_mismatches_total", table="obs_open", type=kind) == 3
