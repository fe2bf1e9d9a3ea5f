"""The arrival histogram through the real pipeline: writes the sink has not copied yet are in
flight when a job reads them; once the sink copies them, the in-flight re-check closes them as
arrived and ``cdc_reconciliation_arrival_seconds{table}`` observes each one."""

from __future__ import annotations

import time

import pytest

from reconciliation import arrivals
from reconciliation.choices import ResolutionStatus
from reconciliation.ledger import inflight
from reconciliation.models import MismatchEvent
from tests.monitoring_support import parse_samples, sample
from tests.pipeline.conftest import LAG_BUDGET_SECONDS, run_job, statuses, wait_rows

pytestmark = pytest.mark.pipeline

COLUMNS = "id text PRIMARY KEY, email text"
ROWS = 20


def test_writes_the_sink_copies_late_are_observed_as_arrivals(
    cassandra, target, captured_table, sink_factory, client
) -> None:
    mapping = captured_table(COLUMNS, COLUMNS)
    sink = sink_factory()
    sink.stop()  # the copy is held back until the job has seen the rows in flight
    insert = cassandra.prepare(f"INSERT INTO {mapping.cassandra_table} (id, email) VALUES (?, ?)")
    keys = [f"late-{i}" for i in range(ROWS)]
    written = time.time()
    for key in keys:
        cassandra.execute(insert, (key, f"{key}@example.com"))

    job = run_job(mapping)
    assert (job.in_flight_count, job.mismatch_count) == (ROWS, 0)

    sink.start()  # it reads on from its group's offset: the copies arrive
    wait_rows(target, mapping.postgres_table, ROWS)
    settled = inflight.settle_job(job)  # waits until they are due, then re-checks them

    assert (settled.healed, settled.drift) == (ROWS, 0)
    assert set(statuses(mapping).values()) == {ResolutionStatus.AUTO_RESOLVED}
    observed = list(
        MismatchEvent.objects.filter(
            mismatch__table_name=mapping.name, arrival_seconds__isnull=False
        ).values_list("arrival_seconds", flat=True)
    )
    assert len(observed) == ROWS
    # The re-check comes at write time + budget + 2 s: each arrival is at least that, and
    # no more than the time this test has taken.
    assert min(observed) >= LAG_BUDGET_SECONDS
    assert max(observed) <= time.time() - written + 1
    samples = parse_samples(client.get("/metrics").content.decode())
    name = "cdc_reconciliation_arrival_seconds"
    assert sample(samples, f"{name}_count", table=mapping.name) == ROWS
    assert sample(samples, f"{name}_bucket", table=mapping.name, le="10.0") == 0
    stats = arrivals.last_day([mapping.name])[mapping.name]
    assert stats.count == ROWS
    assert stats.p50_seconds is not None and stats.p99_seconds is not None
    assert LAG_BUDGET_SECONDS <= stats.p50_seconds <= stats.p99_seconds <= max(observed)
