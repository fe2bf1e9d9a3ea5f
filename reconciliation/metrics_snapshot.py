"""What one scrape of ``/metrics`` reads from the database (``read_snapshot``): the aggregate
queries behind ``metrics.ReconciliationCollector``, run in one transaction under a statement
timeout (``SCRAPE_STATEMENT_TIMEOUT_MS``), into a ``Snapshot`` of plain dicts keyed by table
(and by strategy, mismatch type or job status where the series has those labels).
``reconciliation.metrics`` documents each series and makes the metric families from the
snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from django.db import connection, transaction
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.db.models.fields.json import KeyTextTransform

from reconciliation.choices import JobStatus, ResolutionStatus, ValidationStrategy
from reconciliation.models import (
    AutoRepairAction,
    Mismatch,
    ReconciliationJob,
    TableMapping,
    thresholds_for_table,
)

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

#: The strategies whose row counts are the whole table's (TIMESTAMP_RANGE counts a window).
WHOLE_TABLE_COUNTS = (ValidationStrategy.ROW_COUNT.value, ValidationStrategy.CHECKSUM.value)


@dataclass
class Histogram:
    """One table's durations: how many at or under each bound, how many in all, their sum."""

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
    durations: dict[str, Histogram] = field(default_factory=dict)
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
                snap.durations[table] = Histogram(
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
