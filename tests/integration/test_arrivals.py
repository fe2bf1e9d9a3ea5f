"""The arrival histogram through real Cassandra and PostgreSQL: in-flight differences that
close because the copy arrived are observed in ``cdc_reconciliation_arrival_seconds{table}``
(seconds from the source write to the read that found the copy), and their p50/p99 over the
last day show in ``GET /reconciliation/tables/{name}`` and on the table's admin page."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from django.utils import timezone

from reconciliation import arrivals
from reconciliation.choices import JobStatus, ResolutionStatus, ValidationStrategy
from reconciliation.jobs import build_parameters, create_job, run_in_process
from reconciliation.ledger import inflight
from reconciliation.models import MismatchEvent
from tests.monitoring_support import parse_samples, sample

COLUMNS = "id text PRIMARY KEY, email text"
METRIC = "cdc_reconciliation_arrival_seconds"


def write(cassandra, table: str, key: str, *, ago: float = 0.0) -> None:
    stamp = int((time.time() - ago) * 1_000_000)
    cassandra.execute(
        f"INSERT INTO {table} (id, email) VALUES (%s, %s) USING TIMESTAMP {stamp}",
        (key, f"{key}@example.com"),
    )


def copy(target, table: str, key: str) -> None:
    target.execute(f"INSERT INTO public.{table} VALUES (%s, %s)", (key, f"{key}@example.com"))


def run(mapping) -> None:
    strategy = ValidationStrategy.CHECKSUM
    job = create_job(mapping, strategy, parameters=build_parameters(strategy))
    run_in_process(job)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error_message


@pytest.fixture
def table(table_pair):
    """An empty table pair whose CDC lag budget is 60 s."""
    return table_pair(COLUMNS, COLUMNS, cdc_lag_budget_seconds=60)


def arrival_events(mapping) -> list[float]:
    return sorted(
        MismatchEvent.objects.filter(
            mismatch__table_name=mapping.name, arrival_seconds__isnull=False
        ).values_list("arrival_seconds", flat=True)
    )


def test_differences_that_arrive_are_observed_in_the_metric_the_api_and_the_admin(
    cassandra, target, table, client, api_client, admin_client
) -> None:
    name = table.name
    write(cassandra, name, "a", ago=5)  # written 5 s before the run
    write(cassandra, name, "b", ago=30)
    write(cassandra, name, "lost")  # the pipeline never copies it
    run(table)
    copy(target, name, "a")
    copy(target, name, "b")

    settled = inflight.recheck_due(now=timezone.now() + dt.timedelta(seconds=70))

    assert (settled.healed, settled.drift) == (2, 1)
    # Each arrival is the write time to the re-check: about 75 s and 100 s.
    a, b = arrival_events(table)
    assert a == pytest.approx(75, abs=5) and b == pytest.approx(100, abs=5)
    lost = MismatchEvent.objects.filter(
        mismatch__primary_key_value="lost", mismatch__table_name=name
    ).last()
    assert lost is not None and lost.to_status == ResolutionStatus.PENDING
    assert lost.arrival_seconds is None  # still different: drift, not an arrival

    samples = parse_samples(client.get("/metrics").content.decode())
    assert sample(samples, f"{METRIC}_count", table=name) == 2
    assert sample(samples, f"{METRIC}_sum", table=name) == pytest.approx(a + b)
    assert sample(samples, f"{METRIC}_bucket", table=name, le="60.0") == 0
    assert sample(samples, f"{METRIC}_bucket", table=name, le="120.0") == 2
    assert sample(samples, f"{METRIC}_bucket", table=name, le="+Inf") == 2

    api = api_client(superuser=True)
    body = api.get(f"/reconciliation/tables/{name}").json()["arrival_last_day"]
    assert (body["window_hours"], body["count"]) == (24, 2)
    assert body["p50_seconds"] == pytest.approx((a + b) / 2)
    assert body["p99_seconds"] == pytest.approx(a + 0.99 * (b - a))
    (listed,) = [t for t in api.get("/reconciliation/tables").json() if t["name"] == name]
    assert listed["arrival_last_day"] == body

    page = admin_client.get(f"/admin/reconciliation/tablemapping/{table.pk}/change/")
    text = page.content.decode()
    assert "Arrivals (last 24 h)" in text
    assert f"p50 {(a + b) / 2:.1f} s, p99 {a + 0.99 * (b - a):.1f} s over 2" in text


def test_a_later_run_that_finds_the_copy_observes_an_arrival_too(cassandra, target, table) -> None:
    write(cassandra, table.name, "fresh", ago=3)
    run(table)
    copy(target, table.name, "fresh")

    run(table)  # the covering run closes it equal, before its re-check is due

    (arrived,) = arrival_events(table)
    assert 3 <= arrived < 60
    assert arrivals.last_day([table.name])[table.name].count == 1


def test_arrivals_older_than_a_day_leave_the_percentiles_but_stay_in_the_histogram(
    cassandra, target, table, client, api_client
) -> None:
    write(cassandra, table.name, "old")
    write(cassandra, table.name, "new")
    run(table)
    copy(target, table.name, "old")
    copy(target, table.name, "new")
    inflight.recheck_due(now=timezone.now() + dt.timedelta(seconds=70))
    MismatchEvent.objects.filter(
        mismatch__primary_key_value="old", arrival_seconds__isnull=False
    ).update(at=timezone.now() - dt.timedelta(hours=25), arrival_seconds=500.0)

    stats = arrivals.last_day([table.name])[table.name]
    (new,) = [s for s in arrival_events(table) if s != 500.0]
    assert (stats.count, stats.p50_seconds, stats.p99_seconds) == (1, new, new)
    samples = parse_samples(client.get("/metrics").content.decode())
    assert sample(samples, f"{METRIC}_count", table=table.name) == 2
    assert sample(samples, f"{METRIC}_bucket", table=table.name, le="300.0") == 1


def test_a_table_without_arrivals_says_so(table, client, api_client, admin_client) -> None:
    body = api_client(superuser=True).get(f"/reconciliation/tables/{table.name}").json()
    assert body["arrival_last_day"] == {
        "window_hours": 24,
        "count": 0,
        "p50_seconds": None,
        "p99_seconds": None,
    }
    samples = parse_samples(client.get("/metrics").content.decode())
    assert sample(samples, f"{METRIC}_count", table=table.name) == 0  # its series, at 0
    page = admin_client.get(f"/admin/reconciliation/tablemapping/{table.pk}/change/")
    assert "No in-flight difference arrived in the last 24 h." in page.content.decode()


def test_the_schema_documents_the_arrival_fields(client) -> None:
    schema = json.loads(client.get("/api/schema/?format=json").content)
    components = schema["components"]["schemas"]
    table = components["Table"]["properties"]
    assert "arrival_last_day" in table
    ref = table["arrival_last_day"].get("$ref") or table["arrival_last_day"]["allOf"][0]["$ref"]
    arrival = components[ref.rsplit("/", 1)[1]]["properties"]
    assert set(arrival) == {"window_hours", "count", "p50_seconds", "p99_seconds"}
    assert arrival["p99_seconds"]["nullable"] is True


def test_a_percentile_fraction_outside_0_to_1_is_refused() -> None:
    with pytest.raises(ValueError, match="within 0..1"):
        arrivals.PercentileCont(1.5, "arrival_seconds")
