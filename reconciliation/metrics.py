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

Scrape cost is bounded: five small queries whose work grows with the number of jobs and
mismatch rows only through index scans, never with the size of the reconciled tables, under
a statement timeout (``SCRAPE_STATEMENT_TIMEOUT_MS``).  This does not use
prometheus_client's multiprocess mode: if ``PROMETHEUS_MULTIPROC_DIR`` is set,
django-prometheus builds its own registry and these metrics would not appear.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from django.db import DatabaseError, connection, transaction
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.db.models.fields.json import KeyTextTransform
from prometheus_client.core import (
    REGISTRY,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from reconciliation.choices import (
    AutoRepairResult,
    JobStatus,
    MismatchType,
    RepairCap,
    ResolutionStatus,
    ValidationStrategy,
)
from reconciliation.models import (
    AutoRepairAction,
    Mismatch,
    ReconciliationJob,
    TableMapping,
    thresholds_for_table,
)

logger = logging.getLogger(__name__)

#: Upper bounds (seconds) of the duration histogram: 1 s up to 8 h (+Inf is added).
DURATION_BUCKETS: tuple[float, ...] = (
    1,
    5,
    15,
    30,
    60,
    120,
    300,
    600,
    1200,
    1800,
    3600,
    7200,
    14400,
    28800,
)
#: The statuses ``cdc_reconciliation_jobs_completed_total`` counts (a RUNNING job has not ended).
FINISHED_STATUSES: tuple[str, ...] = (JobStatus.COMPLETED.value, JobStatus.FAILED.value)
#: The longest any one scrape query may take before the scrape gives up on our metrics.
SCRAPE_STATEMENT_TIMEOUT_MS = 5000

PREFIX = "cdc_reconciliation"
#: The strategies whose row counts are the whole table's (TIMESTAMP_RANGE counts a window).
WHOLE_TABLE_COUNTS = (ValidationStrategy.ROW_COUNT.value, ValidationStrategy.CHECKSUM.value)


@dataclass
class _Histogram:
    buckets: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    count: int = 0
    sum: float = 0.0


@dataclass
class Snapshot:
    """Everything one scrape reads from the database."""

    latest: dict[str, dict[str, Any]] = field(default_factory=dict)
    drift: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    row_counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    open_mismatches: dict[tuple[str, str], int] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)
    jobs: dict[tuple[str, str], int] = field(default_factory=dict)
    durations: dict[str, _Histogram] = field(default_factory=dict)
    mismatches: dict[tuple[str, str], int] = field(default_factory=dict)
    thresholds: dict[str, tuple[float, float]] = field(default_factory=dict)
    auto_repairs: dict[tuple[str, str, str], int] = field(default_factory=dict)
    repair_capped: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def tables(self) -> list[str]:
        names = set(self.latest) | set(self.durations) | set(self.thresholds)
        names |= {table for table, _ in self.drift}
        names |= {table for table, _ in self.jobs} | {table for table, _ in self.mismatches}
        names |= {table for table, _, _ in self.auto_repairs}
        return sorted(names)


def read_snapshot() -> Snapshot:
    """Run the scrape's aggregate queries (one transaction, under a statement timeout)."""
    snap = Snapshot()
    with transaction.atomic():
        with connection.cursor() as cursor:
            # set_config(..., true) is SET LOCAL: it ends with this (sub)transaction.
            cursor.execute(
                "SELECT set_config('statement_timeout', %s, true)",
                [str(SCRAPE_STATEMENT_TIMEOUT_MS)],
            )

        latest = (
            ReconciliationJob.objects.filter(status=JobStatus.COMPLETED)
            .order_by("table_name", "-started_at")
            .distinct("table_name")
            .values("table_name", "completed_at")
        )
        snap.latest = {row["table_name"]: dict(row) for row in latest}

        verdicts = ReconciliationJob.objects.latest_conclusive().values_list(
            "table_name", "validation_strategy", "drift_percentage", "drift_ci_low"
        )
        for table, strategy, drift, ci_low in verdicts:
            if drift is not None:
                low = drift if strategy != ValidationStrategy.SAMPLE or ci_low is None else ci_low
                snap.drift[(table, strategy)] = (drift, low)

        counted = (
            ReconciliationJob.objects.filter(
                status=JobStatus.COMPLETED,
                validation_strategy__in=WHOLE_TABLE_COUNTS,
                cassandra_row_count__isnull=False,
                postgres_row_count__isnull=False,
            )
            .order_by("table_name", "-started_at")
            .distinct("table_name")
            .values_list("table_name", "cassandra_row_count", "postgres_row_count")
        )
        snap.row_counts = {table: (c or 0, p or 0) for table, c, p in counted}

        buckets = {
            f"le_{i}": Count(
                "pk",
                filter=Q(
                    status=JobStatus.COMPLETED,
                    completed_at__lte=F("started_at") + timedelta(seconds=bound),
                ),
            )
            for i, bound in enumerate(DURATION_BUCKETS)
        }
        duration = ExpressionWrapper(
            F("completed_at") - F("started_at"), output_field=DurationField()
        )
        per_status = (
            ReconciliationJob.objects.filter(status__in=FINISHED_STATUSES)
            .order_by()
            .values("table_name", "status")
            .annotate(
                n=Count("pk"),
                timed=Count("pk", filter=Q(completed_at__isnull=False)),
                total=Sum(duration),
                **buckets,
            )
        )
        for typed_row in per_status:
            row = cast(dict[str, Any], typed_row)
            table, status = row["table_name"], row["status"]
            snap.jobs[(table, status)] = row["n"]
            if status == JobStatus.COMPLETED:
                total = row["total"]
                snap.durations[table] = _Histogram(
                    buckets=[row[f"le_{i}"] for i in range(len(DURATION_BUCKETS))],
                    count=row["timed"],
                    sum=total.total_seconds() if total is not None else 0.0,
                )

        # A difference found in flight is not drift: it counts in the in-flight gauge while
        # it is IN_FLIGHT, and in the mismatches counter only once it became PENDING (a row
        # closed while in flight keeps its recheck_after: it never was drift).
        in_flight = Q(resolution_status=ResolutionStatus.IN_FLIGHT)
        never_drift = in_flight | Q(recheck_after__isnull=False)
        per_type = (
            Mismatch.objects.order_by()
            .values("table_name", "mismatch_type")
            .annotate(
                n=Count("pk", filter=~never_drift),
                pending=Count("pk", filter=Q(resolution_status=ResolutionStatus.PENDING)),
                in_flight=Count("pk", filter=in_flight),
            )
        )
        for counts in per_type:
            kind = (counts["table_name"], counts["mismatch_type"])
            snap.mismatches[kind] = counts["n"]
            snap.open_mismatches[kind] = counts["pending"]
            table = counts["table_name"]
            snap.in_flight[table] = snap.in_flight.get(table, 0) + counts["in_flight"]

        repairs = (
            AutoRepairAction.objects.order_by()
            .values_list("table_name", "mismatch_type", "result")
            .annotate(n=Count("pk"))
        )
        snap.auto_repairs = {(table, kind, result): n for table, kind, result, n in repairs}
        capped = (
            ReconciliationJob.objects.filter(repair_summary__capped__isnull=False)
            .exclude(repair_summary__capped=None)
            .order_by()
            .values_list("table_name", KeyTextTransform("capped", "repair_summary"))
            .annotate(n=Count("pk"))
        )
        snap.repair_capped = {(table, cap): n for table, cap, n in capped}

        for mapping in TableMapping.objects.only("name", "warning_threshold", "critical_threshold"):
            thresholds = thresholds_for_table(mapping.name, mapping)
            snap.thresholds[mapping.name] = (thresholds.warning, thresholds.critical)
    return snap


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
        hist = snap.durations.get(table, _Histogram())
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
_registered: dict[int, ReconciliationCollector] = {}


def register(registry: CollectorRegistry = REGISTRY) -> ReconciliationCollector:
    """Register the collector on ``registry`` once; later calls return the same collector."""
    with _lock:
        collector = _registered.get(id(registry))
        if collector is None:
            collector = ReconciliationCollector()
            registry.register(collector)
            _registered[id(registry)] = collector
        return collector
