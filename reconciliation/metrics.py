"""cdcrecon's reconciliation metrics, served at ``/metrics`` next to django-prometheus' own.

Design
------
Jobs run in Celery workers (other processes, often other machines); Prometheus scrapes the
web processes, of which there may be several, each restarted at will.  In-process
``Counter``/``Gauge`` objects incremented by the worker that ran a job would therefore be
invisible to the scraped process, split between processes and lost on every restart.

So nothing is counted in memory.  ``ReconciliationCollector`` is a custom prometheus_client
collector, registered once on the default ``REGISTRY`` (from ``ReconciliationConfig.ready()``
through :func:`register`), that reads the job and mismatch tables **at scrape time** with a
few aggregate queries.  Whatever process ran a job and whichever web process is scraped,
the answer is the same, and it survives restarts:

* gauges ``cdc_reconciliation_drift_percentage{table,strategy}`` and
  ``cdc_reconciliation_drift_ci_low_percentage{table,strategy}``: one series per (table,
  strategy) from that strategy's latest *conclusive* job (``latest_conclusive()``: a job
  that examined no key sets none), so a SAMPLE estimate never replaces a CHECKSUM verdict.
  ``ci_low`` is the lower bound of a SAMPLE's 95% interval and the drift itself for the
  exact strategies: the alert rules read it, so an estimate alerts only when even its
  lower bound passes the threshold;
* gauges ``cdc_reconciliation_cassandra_rows`` / ``_postgres_rows{table}``: the last known
  whole-table counts (the latest COMPLETED ROW_COUNT or CHECKSUM job that counted; a SAMPLE
  or a TIMESTAMP_RANGE window does not count the table), and
  ``cdc_reconciliation_last_completed_timestamp_seconds{table}``: the latest COMPLETED job;
* counters ``cdc_reconciliation_jobs_completed_total{table,status}`` (COMPLETED, FAILED) and
  histogram ``cdc_reconciliation_duration_seconds{table}`` (COMPLETED jobs, ``completed_at -
  started_at``): one ``GROUP BY table_name, status`` query with one conditional count per
  bucket;
* counter ``cdc_reconciliation_mismatches_total{table,type}``: differences recorded, each
  standing difference once however many runs found it (the ledger keeps one row per key),
  never one that was only ever in flight; gauge ``cdc_reconciliation_open_mismatches{table,
  type}``: those PENDING now; and gauge ``cdc_reconciliation_in_flight_differences{table}``:
  those IN_FLIGHT now (within the CDC lag budget, not drift) — one ``GROUP BY table_name,
  mismatch_type`` query (``mismatch_table_type_status``);
* gauges ``cdc_reconciliation_drift_warning_threshold`` and
  ``cdc_reconciliation_drift_critical_threshold`` ``{table}``: each TableMapping's effective
  thresholds (per-table value, else RECONCILIATION_DRIFT_*_THRESHOLD), so that the alert rules
  in docker/monitoring/prometheus-alerts.yml honour per-table thresholds;
* counters ``cdc_reconciliation_auto_repairs_total{table,type,result}``: the differences
  the tables' repair policies acted on (``AutoRepairAction`` rows), and
  ``cdc_reconciliation_auto_repair_capped_total{table,cap}``: policy runs that stopped at a
  cap with differences left (the ``ReconciliationAutoRepairCapped`` alert);
* gauge ``cdc_reconciliation_metrics_up``: 1 when the queries succeeded, 0 when the database
  could not answer (the rest of /metrics is still served, with the error logged).

Counters derived from persisted rows only go up while those rows are kept (resolving a
mismatch does not delete it; a status only moves RUNNING -> COMPLETED/FAILED).  Deleting
jobs (or their mismatches) makes the counter drop, which Prometheus reads as a counter
reset; purge old rows rarely and expect ``increase()`` to see one spurious jump then.
Every known table (a TableMapping, or any job or mismatch row) gets all its counter series,
at 0 when nothing happened, so that ``increase()`` sees the first failure of a table as an
increase from 0 rather than as a new series.

Scrape cost is bounded: five small queries (``metrics_snapshot.read_snapshot``) whose work
grows with the number of jobs and mismatch rows only through index scans, never with the size
of the reconciled tables, under a statement timeout (``SCRAPE_STATEMENT_TIMEOUT_MS``).  This
module turns what they read into the metric families and serves them.  This does not use
prometheus_client's multiprocess mode: if ``PROMETHEUS_MULTIPROC_DIR`` is set,
django-prometheus builds its own registry and these metrics would not appear.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

from django.db import DatabaseError
from prometheus_client.core import (
    REGISTRY,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from reconciliation.choices import AutoRepairResult, MismatchType, RepairCap
from reconciliation.metrics_snapshot import (
    DURATION_BUCKETS,
    FINISHED_STATUSES,
    Histogram,
    Snapshot,
    read_snapshot,
)

logger = logging.getLogger(__name__)
C = TypeVar("C", bound=Collector)

PREFIX = "cdc_reconciliation"


def _families() -> dict[str, Metric]:
    """Empty metric families, in exposition order (also what ``describe()`` announces)."""
    t = ["table"]
    return {
        "drift": GaugeMetricFamily(
            f"{PREFIX}_drift_percentage",
            "Drift percentage found by the latest conclusive job of each strategy on the table.",
            labels=["table", "strategy"],
        ),
        "drift_ci_low": GaugeMetricFamily(
            f"{PREFIX}_drift_ci_low_percentage",
            "Lower bound of the drift's 95% interval (SAMPLE); the drift itself for the exact "
            "strategies. The drift alerts compare this with the thresholds.",
            labels=["table", "strategy"],
        ),
        "cassandra": GaugeMetricFamily(
            f"{PREFIX}_cassandra_rows",
            "Rows in Cassandra (the source), last counted by a ROW_COUNT or CHECKSUM job.",
            labels=t,
        ),
        "postgres": GaugeMetricFamily(
            f"{PREFIX}_postgres_rows",
            "Rows in PostgreSQL (the target), last counted by a ROW_COUNT or CHECKSUM job.",
            labels=t,
        ),
        "last": GaugeMetricFamily(
            f"{PREFIX}_last_completed_timestamp_seconds",
            "Unix time at which the table's latest completed job finished.",
            labels=t,
        ),
        "warning": GaugeMetricFamily(
            f"{PREFIX}_drift_warning_threshold",
            "Drift percentage above which the table's drift is a warning.",
            labels=t,
        ),
        "critical": GaugeMetricFamily(
            f"{PREFIX}_drift_critical_threshold",
            "Drift percentage above which the table's drift is critical.",
            labels=t,
        ),
        "mismatches": CounterMetricFamily(
            f"{PREFIX}_mismatches",
            "Differences recorded (each standing difference once), by table and mismatch type.",
            labels=["table", "type"],
        ),
        "open": GaugeMetricFamily(
            f"{PREFIX}_open_mismatches",
            "Differences PENDING now (one per key), by table and mismatch type.",
            labels=["table", "type"],
        ),
        "in_flight": GaugeMetricFamily(
            f"{PREFIX}_in_flight_differences",
            "Differences IN_FLIGHT now: their source rows were younger than the table's CDC "
            "lag budget when read; not drift until their re-check.",
            labels=t,
        ),
        "jobs": CounterMetricFamily(
            f"{PREFIX}_jobs_completed",
            "Reconciliation jobs that ended, by table and final status (COMPLETED, FAILED).",
            labels=["table", "status"],
        ),
        "duration": HistogramMetricFamily(
            f"{PREFIX}_duration_seconds",
            "Run time of completed reconciliation jobs (completed_at - started_at).",
            labels=t,
        ),
        "auto_repairs": CounterMetricFamily(
            f"{PREFIX}_auto_repairs",
            "Differences a table's repair policy acted on, by table, mismatch type and result "
            "(repaired, would_repair, skipped, failed).",
            labels=["table", "type", "result"],
        ),
        "repair_capped": CounterMetricFamily(
            f"{PREFIX}_auto_repair_capped",
            "Repair policy runs that stopped at a cap (per_run, per_hour) with differences "
            "left: something bigger than auto-repair is wrong.",
            labels=["table", "cap"],
        ),
        "up": GaugeMetricFamily(
            f"{PREFIX}_metrics_up",
            "1 if the reconciliation metrics could be read from the database at this scrape.",
        ),
    }


def families_from(snap: Snapshot) -> Iterator[Metric]:
    fam = _families()
    for (table, strategy), (drift, low) in sorted(snap.drift.items()):
        fam["drift"].add_metric([table, strategy], float(drift))  # type: ignore[attr-defined]
        fam["drift_ci_low"].add_metric([table, strategy], float(low))  # type: ignore[attr-defined]
    for table, (cassandra_rows, postgres_rows) in sorted(snap.row_counts.items()):
        fam["cassandra"].add_metric([table], float(cassandra_rows))  # type: ignore[attr-defined]
        fam["postgres"].add_metric([table], float(postgres_rows))  # type: ignore[attr-defined]
    for table, row in sorted(snap.latest.items()):
        if row["completed_at"] is not None:
            fam["last"].add_metric([table], row["completed_at"].timestamp())  # type: ignore[attr-defined]
    for table, (warning, critical) in sorted(snap.thresholds.items()):
        fam["warning"].add_metric([table], warning)  # type: ignore[attr-defined]
        fam["critical"].add_metric([table], critical)  # type: ignore[attr-defined]
    for table in snap.tables:
        for kind in MismatchType.values:
            fam["mismatches"].add_metric([table, kind], snap.mismatches.get((table, kind), 0))  # type: ignore[attr-defined]
            fam["open"].add_metric([table, kind], snap.open_mismatches.get((table, kind), 0))  # type: ignore[attr-defined]
        fam["in_flight"].add_metric([table], snap.in_flight.get(table, 0))  # type: ignore[attr-defined]
        for status in FINISHED_STATUSES:
            fam["jobs"].add_metric([table, status], snap.jobs.get((table, status), 0))  # type: ignore[attr-defined]
        hist = snap.durations.get(table, Histogram())
        points = [(_bound(b), n) for b, n in zip(DURATION_BUCKETS, hist.buckets, strict=True)]
        points.append(("+Inf", hist.count))
        fam["duration"].add_metric([table], points, sum_value=hist.sum)  # type: ignore[attr-defined]
        for kind in MismatchType.values:
            for result in AutoRepairResult.values:
                n = snap.auto_repairs.get((table, kind, result), 0)
                fam["auto_repairs"].add_metric([table, kind, result], n)  # type: ignore[attr-defined]
        for cap in RepairCap.values:
            n = snap.repair_capped.get((table, cap), 0)
            fam["repair_capped"].add_metric([table, cap], n)  # type: ignore[attr-defined]
    fam["up"].add_metric([], 1.0)  # type: ignore[attr-defined]
    yield from fam.values()


def _bound(value: float) -> str:
    return str(float(value))


class ReconciliationCollector(Collector):
    """Reads the reconciliation metrics from the database at every scrape."""

    def describe(self) -> Iterable[Metric]:
        # Announcing the names without samples keeps registration free of database access.
        return list(_families().values())

    def collect(self) -> Iterable[Metric]:
        try:
            snap = read_snapshot()
        except DatabaseError:
            logger.exception("Could not read the reconciliation metrics from the database")
            down = _families()["up"]
            down.add_metric([], 0.0)  # type: ignore[attr-defined]
            return [down]
        return list(families_from(snap))


_lock = threading.Lock()
_registered: dict[tuple[int, type[Collector]], Collector] = {}


def register_once(kind: type[C], registry: CollectorRegistry = REGISTRY) -> C:
    """Register one ``kind()`` collector on ``registry``; later calls return the same one."""
    with _lock:
        collector = _registered.get((id(registry), kind))
        if collector is None:
            collector = kind()
            registry.register(collector)
            _registered[(id(registry), kind)] = collector
        assert isinstance(collector, kind)
        return collector


def register(registry: CollectorRegistry = REGISTRY) -> ReconciliationCollector:
    """Register the collector on ``registry`` once; later calls return the same collector."""
    return register_once(ReconciliationCollector, registry)
