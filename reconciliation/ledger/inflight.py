"""The later re-check of in-flight differences (a job's IN_FLIGHT mismatches).

A job that judges by write time (``RecheckRule.WRITE_TIME``) records a difference whose
source row was younger than the table's CDC lag budget as IN_FLIGHT, with
``recheck_after`` = write time + budget + a margin; it is not counted in the job's
mismatch_count, drift or alert.  Once due, ``recheck_due`` reads each such key again from
both stores through the ledger's lookups (``ledger.compare_now``) and settles it:

* equal now: closed AUTO_RESOLVED ("arrived within the CDC lag"), one more *transient* on
  the job that found it; its history event keeps the seconds from the write to this read
  (``arrivals``: the arrival histogram);
* the source row is gone and it had a TTL (gone on both sides, or only the target's copy
  left): it expired before it was copied; closed AUTO_RESOLVED, one more *expired*;
* written again since (a newer write time, still within the budget): stays IN_FLIGHT with
  a new ``recheck_after`` (the same write is never in flight twice: ``lag.lag_verdict``'s
  ``waited_for``);
* still different: PENDING (real drift now), and the job that found it gets one more
  mismatch, its drift and alert level recomputed, so ``cdc_reconciliation_drift_percentage``
  and the alert rules see it.

Each key is settled in its own transaction, under a lock skipped by anyone else settling it
(two sweeps never settle a key twice).  Who calls it: the Celery task
``reconciliation.recheck_in_flight``, sent with a countdown when a worker's job ends with
differences in flight (``jobs.runner``) and run by beat every minute (a sweep, so a dead
worker loses nothing); and ``manage.py reconcile``, which waits for its own job's
(``settle_job``).  ``heal`` also closes IN_FLIGHT rows a later covering run finds equal, and
a later run that finds the key in flight again refreshes the same row (one per key).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from django.db import transaction
from django.utils import timezone

from reconciliation.arrivals import arrival_seconds
from reconciliation.choices import JobStatus, ResolutionStatus, ValidationStrategy
from reconciliation.connections import consistency_level
from reconciliation.engine import (
    MISSING_IN_CASSANDRA,
    Difference,
    KeyReading,
    Options,
    lag_verdict,
)
from reconciliation.engine.lag import EXPIRED, IN_FLIGHT
from reconciliation.ledger.reads import compare_now, engine_for
from reconciliation.ledger.record import refresh
from reconciliation.ledger.transition import Actor, transition
from reconciliation.ledger.verdict import recount
from reconciliation.models import (
    Mismatch,
    MismatchQuerySet,
    ReconciliationJob,
    TableMapping,
    thresholds_for_table,
)

logger = logging.getLogger(__name__)

BATCH = 500
#: How many times ``settle_job`` waits for a key written again and again (then beat's sweep
#: takes over).
SETTLE_ROUNDS = 5
HEALED = "healed"
DRIFT = "drift"
EXPIRED_OUTCOME = "expired"
STILL_IN_FLIGHT = "in_flight"


@dataclass
class Settled:
    """What one re-check pass did."""

    healed: int = 0
    drift: int = 0
    expired: int = 0
    in_flight: int = 0

    def add(self, outcome: str) -> None:
        if outcome == HEALED:
            self.healed += 1
        elif outcome == DRIFT:
            self.drift += 1
        elif outcome == EXPIRED_OUTCOME:
            self.expired += 1
        elif outcome == STILL_IN_FLIGHT:
            self.in_flight += 1


def due(now: dt.datetime | None = None) -> MismatchQuerySet:
    """The IN_FLIGHT mismatches whose re-check is due at ``now``."""
    return Mismatch.objects.filter(
        resolution_status=ResolutionStatus.IN_FLIGHT, recheck_after__lte=now or timezone.now()
    )


def recheck_due(*, now: dt.datetime | None = None, job: ReconciliationJob | None = None) -> Settled:
    """Settle every IN_FLIGHT mismatch due at ``now`` (only ``job``'s, when given)."""
    now = now or timezone.now()
    settled = Settled()
    rows = due(now)
    if job is not None:
        rows = rows.filter(last_job=job)
    for table in sorted(set(rows.values_list("table_name", flat=True))):
        mapping = TableMapping.objects.filter(name=table).first()
        if mapping is None:  # the table was unregistered: nothing can read it again
            continue
        engine = engine_for(
            mapping,
            Options(consistency=consistency_level(), lag_budget_seconds=mapping.lag_budget_seconds),
        )
        last = ""
        while batch := list(
            rows.filter(table_name=table, primary_key_value__gt=last).order_by("primary_key_value")[
                :BATCH
            ]
        ):
            last = batch[-1].primary_key_value
            readings = compare_now(engine, [m.primary_key_value for m in batch])
            for mismatch in batch:
                outcome = _settle(mismatch, readings.get(mismatch.primary_key_value), mapping, now)
                settled.add(outcome)
    if settled.healed or settled.drift or settled.expired:
        logger.info("In-flight re-check: %s", settled)
    return settled


def _settle(
    mismatch: Mismatch, reading: KeyReading | None, mapping: TableMapping, now: dt.datetime
) -> str:
    """Decide one due in-flight mismatch from its key as read now, and record it."""
    outcome, finding = decide(mismatch, reading, mapping.lag_budget_seconds, now.timestamp())
    actor = Actor.recheck()
    with transaction.atomic():
        locked = (
            Mismatch.objects.select_for_update(skip_locked=True)
            .filter(pk=mismatch.pk, resolution_status=ResolutionStatus.IN_FLIGHT)
            .first()
        )
        if locked is None:  # settled by someone else meanwhile
            return ""
        if outcome in (HEALED, EXPIRED_OUTCOME):
            why = (
                "the rows are equal now: arrived within the CDC lag"
                if outcome == HEALED
                else "the source row's TTL ran out before it was copied: not a difference"
            )
            arrived = arrival_seconds(locked.source_write_time, now) if outcome == HEALED else None
            transition(
                locked,
                ResolutionStatus.AUTO_RESOLVED,
                actor=actor,
                reason=f"Re-checked after the CDC lag budget: {why}.",
                fields={"resolved_at": now, "resolved_by": None},
                now=now,
                event={"arrival_seconds": arrived},
            )
        else:
            assert finding is not None
            prefix = (
                "Still different after the CDC lag budget: drift; "
                if outcome == DRIFT
                else "Written again within the CDC lag budget: "
            )
            refresh(locked, finding, actor, now, prefix)
        if locked.last_job_id is not None:
            _count_on_job(locked.last_job_id, outcome, mapping)
    return outcome


def decide(
    mismatch: Mismatch, reading: KeyReading | None, budget: float, now: float
) -> tuple[str, Difference | None]:
    """The outcome for an in-flight mismatch given its key as read now (``reading``; None:
    the key no longer fits the table), and the finding to record for DRIFT or IN_FLIGHT."""
    had_ttl = mismatch.source_ttl_seconds is not None
    if reading is None:
        return DRIFT, _unreadable_finding(mismatch)
    difference = reading.difference
    if difference is None:
        # Equal now.  Nothing on either side and a TTL before: it expired, never copied.
        return (EXPIRED_OUTCOME if had_ttl and not reading.rows else HEALED), None
    if difference.mismatch_type == MISSING_IN_CASSANDRA and had_ttl:
        return EXPIRED_OUTCOME, None  # only the target's copy is left
    written = None
    if difference.source_write_time is not None:
        expires = None if difference.source_ttl is None else time.time() + difference.source_ttl
        written = (difference.source_write_time, expires)
    waited = mismatch.source_write_time
    verdict = lag_verdict(
        difference.mismatch_type,
        written,
        now=now,
        budget=budget,
        reads_began_at=now,
        waited_for=None if waited is None else _micros(waited),
    )
    if verdict.kind == EXPIRED:
        return EXPIRED_OUTCOME, None
    if verdict.kind == IN_FLIGHT:
        return STILL_IN_FLIGHT, replace(difference, recheck_after=verdict.recheck_after)
    return DRIFT, difference


def _unreadable_finding(mismatch: Mismatch) -> Difference:
    return Difference(
        primary_key_value=mismatch.primary_key_value,
        mismatch_type=mismatch.mismatch_type,
        cassandra_checksum=mismatch.cassandra_checksum,
        postgres_checksum=mismatch.postgres_checksum,
        cassandra_data=mismatch.cassandra_data,
        postgres_data=mismatch.postgres_data,
    )


def _micros(value: dt.datetime) -> int:
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _count_on_job(job_id: uuid.UUID, outcome: str, mapping: TableMapping) -> None:
    """Add a settled difference to the job that found it in flight: a transient, an
    expired one, or a mismatch (its drift and alert level recomputed)."""
    job = ReconciliationJob.objects.select_for_update().filter(pk=job_id).first()
    if job is None:
        return
    if outcome == HEALED:
        job.transient_count += 1
        job.save(update_fields=["transient_count"])
    elif outcome == EXPIRED_OUTCOME:
        job.expired_count += 1
        job.save(update_fields=["expired_count"])
    elif outcome == DRIFT:
        job.mismatch_count += 1
        fields = ["mismatch_count"]
        if job.status == JobStatus.COMPLETED and job.keys_examined:
            verdict = recount(
                job.validation_strategy,
                job.mismatch_count,
                job.keys_examined,
                thresholds_for_table(job.table_name, mapping),
            )
            job.drift_percentage = verdict.drift_percentage
            if job.validation_strategy == ValidationStrategy.SAMPLE:
                job.drift_ci_low, job.drift_ci_high = verdict.drift_ci_low, verdict.drift_ci_high
            job.alert_level = verdict.alert_level
            job.alert_fired = job.alert_fired or verdict.alert_fired
            fields += ["drift_percentage", "drift_ci_low", "drift_ci_high"]
            fields += ["alert_level", "alert_fired"]
        job.save(update_fields=fields)


# -- scheduling -----------------------------------------------------------------------------------


def next_due(job: ReconciliationJob) -> dt.datetime | None:
    """When the last of ``job``'s in-flight differences comes due (None: none in flight)."""
    latest = (
        Mismatch.objects.filter(last_job=job, resolution_status=ResolutionStatus.IN_FLIGHT)
        .order_by("-recheck_after")
        .values_list("recheck_after", flat=True)
        .first()
    )
    return latest


def settle_job(job: ReconciliationJob, *, sleep: Callable[[float], None] = time.sleep) -> Settled:
    """Wait until ``job``'s in-flight differences are due and settle them here (``manage.py
    reconcile``: a run in this process leaves nothing in flight)."""
    settled = Settled()
    for _ in range(SETTLE_ROUNDS):
        when = next_due(job)
        if when is None:
            break
        wait = (when - timezone.now()).total_seconds()
        if wait > 0:
            sleep(wait)
        step = recheck_due(job=job)
        settled.healed += step.healed
        settled.drift += step.drift
        settled.expired += step.expired
    return settled
