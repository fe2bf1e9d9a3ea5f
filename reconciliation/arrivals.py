"""How long the CDC pipeline took to copy the writes cdcrecon saw in flight, measured from the
outside: ``cdc_reconciliation_arrival_seconds{table}``, and its p50/p99 over the last day.

An *arrival* is an in-flight difference closed because the rows are equal now: the in-flight
re-check (``ledger.inflight``) or a later run covering the key (``ledger.record.heal``)
found the copy.  Its value is the seconds from the source row's write time (the mismatch's
``source_write_time``: the latest WRITETIME of its regular columns when last read) to that
read.  It is stored on the history event of the move (``MismatchEvent.arrival_seconds``), one
per arrival, so the histogram survives restarts, is the same whichever process is scraped,
and the last day's percentiles are one SQL ``percentile_cont`` away.

Each value is an upper bound of that write's lag: the copy landed at some moment before the
read that found it.  The scheduled re-check reads at write time + the table's CDC lag budget
+ 2 s, so with nothing else reading the key every arrival is just above the budget; a job run
more often than the budget (or a re-check asked for sooner) sees copies earlier and measures
closer.  A difference still different at its re-check never arrives here: it is PENDING drift.

``ArrivalCollector`` is registered on the default registry next to
``metrics.ReconciliationCollector`` (``ReconciliationConfig.ready()``), reading the events at
scrape time under the same statement timeout.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.db.models import Aggregate, Count, FloatField, Q, Sum
from django.utils import timezone
from prometheus_client.core import REGISTRY, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from reconciliation.metrics import PREFIX, register_once
from reconciliation.metrics_snapshot import SCRAPE_STATEMENT_TIMEOUT_MS
from reconciliation.models import MismatchEvent, TableMapping

logger = logging.getLogger(__name__)

#: Upper bounds (seconds) of the arrival histogram: 1 s up to a day (+Inf is added).
ARRIVAL_BUCKETS: tuple[float, ...] = (
    1,
    2,
    5,
    10,
    20,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
    7200,
    21600,
    86400,
)
#: The window of the percentiles the admin and the API show.
WINDOW = dt.timedelta(hours=24)
TABLE = "mismatch__table_name"


def arrival_seconds(source_write_time: dt.datetime | None, now: dt.datetime) -> float | None:
    """Seconds from a source write to the read that found its copy (None: no write time).
    A write time ahead of ``now`` (a skewed client clock) counts as 0."""
    if source_write_time is None:
        return None
    return max(0.0, (now - source_write_time).total_seconds())


class PercentileCont(Aggregate):
    """PostgreSQL's ``percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)``."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, fraction: float, expression: Any, **extra: Any) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"a percentile's fraction is within 0..1, not {fraction}")
        super().__init__(expression, fraction=repr(float(fraction)), **extra)


@dataclass(frozen=True)
class ArrivalStats:
    """One table's arrivals in the last ``WINDOW``."""

    count: int = 0
    p50_seconds: float | None = None
    p99_seconds: float | None = None


def last_day(
    tables: Iterable[str] | None = None, *, now: dt.datetime | None = None
) -> dict[str, ArrivalStats]:
    """Each table's arrivals within ``WINDOW`` before ``now`` (only ``tables``, when given);
    a table without any is left out (``ArrivalStats()`` is its answer)."""
    since = (now or timezone.now()) - WINDOW
    rows = MismatchEvent.objects.filter(arrival_seconds__isnull=False, at__gte=since)
    if tables is not None:
        rows = rows.filter(**{f"{TABLE}__in": list(tables)})
    stats = (
        rows.order_by()
        .values(TABLE)
        .annotate(
            n=Count("pk"),
            p50=PercentileCont(0.5, "arrival_seconds"),
            p99=PercentileCont(0.99, "arrival_seconds"),
        )
    )
    return {row[TABLE]: ArrivalStats(row["n"], row["p50"], row["p99"]) for row in stats}


def describe(stats: ArrivalStats) -> str:
    """The admin's one line about a table's last day of arrivals."""
    if not stats.count or stats.p50_seconds is None or stats.p99_seconds is None:
        return "No in-flight difference arrived in the last 24 h."
    return (
        f"p50 {stats.p50_seconds:.1f} s, p99 {stats.p99_seconds:.1f} s over {stats.count} "
        "in-flight differences that arrived in the last 24 h (write time to the read that "
        "found the copy)."
    )


# -- the metric ----------------------------------------------------------------------------------


@dataclass
class Histogram:
    buckets: list[int] = field(default_factory=lambda: [0] * len(ARRIVAL_BUCKETS))
    count: int = 0
    sum: float = 0.0


def histograms() -> dict[str, Histogram]:
    """Every table's arrivals ever recorded (a cumulative histogram), every registered table
    included at 0 so that ``increase()`` sees its first arrival."""
    counted = {
        f"le_{i}": Count("pk", filter=Q(arrival_seconds__lte=bound))
        for i, bound in enumerate(ARRIVAL_BUCKETS)
    }
    rows = (
        MismatchEvent.objects.filter(arrival_seconds__isnull=False)
        .order_by()
        .values(TABLE)
        .annotate(n=Count("pk"), total=Sum("arrival_seconds"), **counted)
    )
    result = {name: Histogram() for name in TableMapping.objects.values_list("name", flat=True)}
    for row in rows:
        result[row[TABLE]] = Histogram(
            buckets=[row[f"le_{i}"] for i in range(len(ARRIVAL_BUCKETS))],
            count=row["n"],
            sum=float(row["total"] or 0.0),
        )
    return result


def _family() -> HistogramMetricFamily:
    return HistogramMetricFamily(
        f"{PREFIX}_arrival_seconds",
        "Seconds from the source write of an in-flight difference to the read that found its "
        "copy equal (the in-flight re-check, or a later run): the CDC pipeline's lag, an "
        "upper bound per write.",
        labels=["table"],
    )


class ArrivalCollector(Collector):
    """Reads the arrival histogram from the history table at every scrape."""

    def describe(self) -> Iterable[Metric]:
        return [_family()]

    def collect(self) -> Iterable[Metric]:
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT set_config('statement_timeout', %s, true)",
                        [str(SCRAPE_STATEMENT_TIMEOUT_MS)],
                    )
                per_table = histograms()
        except DatabaseError:  # cdc_reconciliation_metrics_up says so
            logger.exception("Could not read the arrival histogram from the database")
            return []
        family = _family()
        for table, hist in sorted(per_table.items()):
            points = [
                (str(float(b)), n) for b, n in zip(ARRIVAL_BUCKETS, hist.buckets, strict=True)
            ]
            points.append(("+Inf", hist.count))
            family.add_metric([table], points, sum_value=hist.sum)
        return [family]


def register(registry: CollectorRegistry = REGISTRY) -> ArrivalCollector:
    """Register the collector on ``registry`` once; later calls return the same collector."""
    return register_once(ArrivalCollector, registry)
