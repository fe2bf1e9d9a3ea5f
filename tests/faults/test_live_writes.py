"""Live writes during a CHECKSUM job, copied to PostgreSQL with a CDC-like lag: every
difference they cause heals, so the job stores no false mismatches and fires no alert —
under the fixed re-check delay (issue 12, fault 4) and under a CDC lag budget above the lag,
judged by the source rows' write times (issue 18).  Runs on the shared services: it injects
no fault."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque

import psycopg
import pytest

from reconciliation.choices import (
    AlertLevel,
    JobStatus,
    RecheckRule,
    ResolutionStatus,
    ValidationStrategy,
)
from reconciliation.jobs import create_job, run_in_process
from reconciliation.ledger import inflight
from reconciliation.models import Mismatch

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

COLUMNS = "id text PRIMARY KEY, email text"
BASE_ROWS = 4000
LAG_SECONDS = 0.5  # the pipeline's delay between a Cassandra write and its PostgreSQL copy
WRITES_PER_SECOND = 300


class LaggingPipeline:
    """Writes rows to Cassandra now and to PostgreSQL ``LAG_SECONDS`` later (new keys and
    updates of existing ones), until ``stop()``; then the copies still in flight land."""

    def __init__(self, cassandra, target_url: str, table: str) -> None:
        self.insert = cassandra.prepare(f"INSERT INTO {table} (id, email) VALUES (?, ?)")
        self.cassandra = cassandra
        self.target_url = target_url
        self.table = table
        self.in_flight: deque[tuple[float, str, str]] = deque()
        self.stopping = threading.Event()
        self.written = 0
        self.errors: list[BaseException] = []
        self.threads = [
            threading.Thread(target=self._write, daemon=True),
            threading.Thread(target=self._copy, daemon=True),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _write(self) -> None:
        try:
            n = 0
            while not self.stopping.is_set():
                key = f"live-{n}" if n % 2 else f"user-{(n * 7) % BASE_ROWS}"  # insert / update
                email = f"v{n}@example.com"
                self.cassandra.execute(self.insert, (key, email))
                self.in_flight.append((time.monotonic() + LAG_SECONDS, key, email))
                self.written += 1
                n += 1
                time.sleep(1 / WRITES_PER_SECOND)
        except BaseException as exc:
            self.errors.append(exc)

    def _copy(self) -> None:
        try:
            with psycopg.connect(self.target_url, autocommit=True) as conn:
                while not (self.stopping.is_set() and not self.in_flight):
                    if not self.in_flight or self.in_flight[0][0] > time.monotonic():
                        time.sleep(0.01)
                        continue
                    _, key, email = self.in_flight.popleft()
                    conn.execute(
                        f"INSERT INTO public.{self.table} (id, email) VALUES (%s, %s) "
                        "ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email",
                        (key, email),
                    )
        except BaseException as exc:
            self.errors.append(exc)


@pytest.mark.django_db
def test_live_writes_with_cdc_lag_during_checksum_give_no_false_mismatches(
    cassandra, target, target_db, table_pair, settings
) -> None:
    settings.RECONCILIATION = dataclasses.replace(
        settings.RECONCILIATION, recheck_delay_seconds=3 * LAG_SECONDS + 1
    )
    mapping = table_pair(COLUMNS, COLUMNS)
    insert = cassandra.prepare(f"INSERT INTO {mapping.cassandra_table} (id, email) VALUES (?, ?)")
    rows = [(f"user-{i}", f"u{i}@example.com") for i in range(BASE_ROWS)]
    for row in rows:
        cassandra.execute(insert, row)
    with target.cursor() as cursor:
        cursor.executemany(f"INSERT INTO public.{mapping.postgres_table} VALUES (%s, %s)", rows)

    pipeline = LaggingPipeline(cassandra, target_db, mapping.cassandra_table)
    pipeline.start()
    time.sleep(1)  # the pipeline is busy before the job starts

    def stop_writes_when_the_recheck_starts(fraction: float, *segments: int) -> None:
        if fraction >= 0.9 and not pipeline.stopping.is_set():
            pipeline.stop()

    job = create_job(mapping, ValidationStrategy.CHECKSUM)
    try:
        run_in_process(job, on_progress=stop_writes_when_the_recheck_starts)
    finally:
        pipeline.stop()
    job.refresh_from_db()

    assert not pipeline.errors, pipeline.errors
    assert pipeline.written > 100  # the writes really ran during the job
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert job.transient_count > 0  # the scan saw writes in flight ...
    assert job.mismatch_count == 0  # ... and every one healed within the re-check delay
    assert not Mismatch.objects.filter(job=job).exists()


@pytest.mark.django_db
def test_live_writes_with_a_lag_within_the_budget_give_no_drift_and_no_alert(
    cassandra, target, target_db, table_pair
) -> None:
    # No fixed delay: the verdict comes from each row's write time against the budget.
    mapping = table_pair(COLUMNS, COLUMNS, cdc_lag_budget_seconds=5, critical_threshold=0.01)
    insert = cassandra.prepare(f"INSERT INTO {mapping.cassandra_table} (id, email) VALUES (?, ?)")
    rows = [(f"user-{i}", f"u{i}@example.com") for i in range(BASE_ROWS)]
    for row in rows:
        cassandra.execute(insert, row)
    with target.cursor() as cursor:
        cursor.executemany(f"INSERT INTO public.{mapping.postgres_table} VALUES (%s, %s)", rows)

    pipeline = LaggingPipeline(cassandra, target_db, mapping.cassandra_table)
    pipeline.start()
    time.sleep(1)

    def stop_writes_when_the_verdicts_start(fraction: float, *segments: int) -> None:
        if fraction >= 0.9 and not pipeline.stopping.is_set():
            pipeline.stop()

    job = create_job(mapping, ValidationStrategy.CHECKSUM)
    try:
        run_in_process(job, on_progress=stop_writes_when_the_verdicts_start)
    finally:
        pipeline.stop()
    job.refresh_from_db()

    assert not pipeline.errors, pipeline.errors
    assert pipeline.written > 100
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert job.recheck_rule == RecheckRule.WRITE_TIME
    assert job.in_flight_count + job.transient_count > 0  # the scan saw writes in flight ...
    assert job.mismatch_count == 0 and job.drift_percentage == 0.0
    assert job.alert_level == AlertLevel.NONE

    settled = inflight.settle_job(job)  # ... and each arrived within the budget

    job.refresh_from_db()
    assert settled.drift == 0 and settled.healed == job.in_flight_count
    assert job.mismatch_count == 0 and job.drift_percentage == 0.0
    assert job.alert_level == AlertLevel.NONE and not job.alert_fired
    assert not Mismatch.objects.filter(
        table_name=mapping.name, resolution_status=ResolutionStatus.PENDING
    ).exists()
