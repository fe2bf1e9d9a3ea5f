"""A table's repair policy: after a conclusive job, repair its confirmed differences from
Cassandra, within the policy's limits (``TableMapping.repair_*``).

``run_policy(job_id)`` (the ``reconciliation.auto_repair`` task's body) takes the table's
open (PENDING) differences, oldest first, and for each one:

* **eligible?**  Its type is one the policy may fix, and it is at least the policy's
  minimum age old (``TableMapping.repair_min_age``: its own, else the table's CDC lag
  budget, else 10 minutes), counted from the source row's write time when the job read one,
  else from when the difference was first seen.  The others are counted, not touched.
* **confirmed?**  Its key is read again from both stores (``ledger.compare_now``: the jobs'
  own lookups and key equality).  Equal now: closed (AUTO_RESOLVED, nothing written).
  Changed since detection (the type or either side's checksum is not what the job
  captured, or the source row was written again within the minimum age): left open for
  the next run, its captured rows refreshed, never overwritten.
* **repaired** through ``repair.repair_mismatch`` (the one repair path, its own
  transaction per difference), as AUTO_REPAIRED by the user ``policy:<table>``, with an
  audit entry column by column; the repair refuses to write if the source row changed
  between the re-read and the write.  A ``dry_run`` policy records what it would repair
  and writes nothing to either store.

Each difference acted on leaves an ``AutoRepairAction``; the run's sums go on the job's
``repair_summary``.  At most ``repair_max_per_run`` repairs per run and
``repair_max_per_hour`` per table in any hour (counted from the actions, whichever worker
made them); a run that stops at a cap says which in its summary (``capped``), which the
metrics count and an alert watches.  ``RECONCILIATION_AUTO_REPAIR_ENABLED=false`` (the kill
switch) stops every policy: the next run only records that it was switched off.  Setting
a table's policy to off stops a run of it at its next batch (``stopped``).

A run killed in the middle loses nothing: every repair made so far is committed and
audited, the rest stays PENDING, and the redelivered task carries on (this job's repairs
already made count towards its cap).  While it works, the job shows the run's progress;
a lost run is shown interrupted, resumed by the broker's redelivery, and its lost
attempt's audit entry marked ABANDONED (``reconciliation.repair.runs``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from cdcrecon.conf import settings
from gdpr.models import AuditLogEntry
from reconciliation.choices import (
    AutoRepairResult,
    JobStatus,
    NotEligible,
    RepairCap,
    RepairPolicy,
    RepairRunStatus,
    ResolutionStatus,
    SkipReason,
)
from reconciliation.engine import Engine, KeyReading
from reconciliation.ledger.reads import compare_now, engine_for
from reconciliation.ledger.record import apply_reading
from reconciliation.ledger.transition import Actor
from reconciliation.locks import repair_policy_lock
from reconciliation.models import (
    AutoRepairAction,
    Mismatch,
    ReconciliationJob,
    TableMapping,
)
from reconciliation.repair import runs
from reconciliation.repair.manual import RepairFailed, repair_mismatch
from reconciliation.vocabulary import written_within

logger = logging.getLogger(__name__)

#: Differences re-read from both stores at a time.
BATCH = 50


def policy_user(table_name: str) -> Any:
    """The user a table's policy acts as (``policy:<table>``: inactive, no password, so
    nobody can log in as it)."""
    user, created = get_user_model().objects.get_or_create(
        username=f"policy:{table_name}", defaults={"is_active": False}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def should_run(job: ReconciliationJob) -> bool:
    """Whether a finished job is followed by its table's repair policy."""
    if job.status != JobStatus.COMPLETED or not job.keys_examined:
        return False
    policy = (
        TableMapping.objects.filter(name=job.table_name)
        .values_list("repair_policy", flat=True)
        .first()
    )
    return policy not in (None, RepairPolicy.OFF)


def run_policy(job_id: Any) -> dict[str, Any] | None:
    """Run the table's repair policy after ``job_id``; the summary stored on the job, or
    None when no policy applies (the job is not conclusive, the policy is off)."""
    job = ReconciliationJob.objects.filter(pk=job_id).first()
    if job is None or not should_run(job):
        return None
    if runs.is_done(job):  # a late redelivery: the run already ended
        return job.repair_summary
    mapping = TableMapping.objects.get(name=job.table_name)
    started = timezone.now()
    summary = _empty_summary(mapping, started)
    if not settings.reconciliation.auto_repair_enabled:
        summary["status"] = RepairRunStatus.KILL_SWITCH
        return _save(job, summary, runs.stop_lost_run(job, mapping))
    with repair_policy_lock(mapping.pk) as mine:
        if not mine:
            runs.refuse_if_resuming(job)  # this job's own run, unfinished: ResumeLater
            logger.info("The repair policy of %s is running elsewhere", mapping.name)
            summary["status"] = RepairRunStatus.BUSY
            return _save(job, summary)
        progress = runs.begin(job, mapping)  # or resume it, abandoning its lost attempt
        run = _Run(job, mapping, progress)
        try:
            run.go()
        except Exception as exc:  # a store went away: what was done stays done
            logger.exception("The repair policy of %s stopped", mapping.name)
            summary.update(run.summary())
            summary.update(status=RepairRunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        else:
            summary.update(run.summary())
        return _save(job, summary, progress)


# -- one run ------------------------------------------------------------------------------------


@dataclass
class _Verdict:
    result: str
    reason: str = ""
    detail: str = ""
    audit_entry: AuditLogEntry | None = None


class _Run:
    def __init__(
        self, job: ReconciliationJob, mapping: TableMapping, progress: runs.Progress
    ) -> None:
        self.job, self.mapping, self.progress = job, mapping, progress
        self.dry_run = mapping.repair_policy == RepairPolicy.DRY_RUN
        self.counts = (
            AutoRepairResult.REPAIRED if not self.dry_run else AutoRepairResult.WOULD_REPAIR
        )
        self.user = policy_user(mapping.name)
        self.actor = Actor.policy(self.user, job.pk)
        self.not_eligible: Counter[str] = Counter()
        self.deferred = 0
        self.capped: str | None = None
        self.budget, self.cap = self._budget()
        self.engine: Engine | None = None
        self.stopped = False

    def _switched_off(self) -> bool:
        """The table's policy was set to off (or another mode) since the run began: an
        operator's stop takes effect at the next batch."""
        now = TableMapping.objects.filter(pk=self.mapping.pk).values_list(
            "repair_policy", flat=True
        )
        return now.first() != self.mapping.repair_policy

    def _budget(self) -> tuple[int, str]:
        """How many repairs this run may still make, and the cap that sets it."""
        made = AutoRepairAction.objects.filter(job=self.job, result=self.counts).count()
        hour_ago = timezone.now() - dt.timedelta(hours=1)
        last_hour = AutoRepairAction.objects.filter(
            table_name=self.mapping.name, result=self.counts, created_at__gte=hour_ago
        ).count()
        per_run = self.mapping.repair_max_per_run - made
        per_hour = self.mapping.repair_max_per_hour - last_hour
        if per_hour < per_run:
            return max(0, per_hour), RepairCap.PER_HOUR
        return max(0, per_run), RepairCap.PER_RUN

    def go(self) -> None:
        for batch in _batches(self._eligible(), BATCH):
            if self.stopped or self._switched_off():
                self.stopped = True
                self.deferred += len(batch)
                continue
            if self.budget <= 0:  # the whole batch waits: no need to read it
                self.deferred += len(batch)
                self.capped = self.cap
                continue
            readings = compare_now(self._engine(), [m.primary_key_value for m in batch])
            for mismatch in batch:
                if self.budget <= 0:
                    self.deferred += 1
                    self.capped = self.cap
                    continue
                verdict = self._act(mismatch, readings.get(mismatch.primary_key_value))
                if verdict.result != AutoRepairResult.REPAIRED:  # a repair recorded its own
                    self._record(mismatch, verdict)
                if verdict.result == self.counts:
                    self.budget -= 1

    def _engine(self) -> Engine:
        if self.engine is None:
            self.engine = engine_for(self.mapping)
        return self.engine

    def _eligible(self) -> Iterator[Mismatch]:
        """The open differences the policy may act on, oldest first (the others counted)."""
        allowed = set(self.mapping.repair_types)
        min_age = self.mapping.repair_min_age
        now = timezone.now().timestamp()
        pending = Mismatch.objects.filter(
            table_name=self.mapping.name, resolution_status=ResolutionStatus.PENDING
        ).order_by("first_seen_at", "pk")
        for mismatch in pending.iterator(chunk_size=500):
            if mismatch.mismatch_type not in allowed:
                self.not_eligible[NotEligible.TYPE_NOT_ALLOWED] += 1
            elif written_within(_since(mismatch).timestamp(), min_age, now):
                self.not_eligible[NotEligible.TOO_YOUNG] += 1
            else:
                yield mismatch

    def _act(self, mismatch: Mismatch, reading: KeyReading | None) -> _Verdict:
        if reading is None:  # no longer a valid key of the table (its schema changed)
            detail = "The key is not valid for the table now."
            return _Verdict(AutoRepairResult.FAILED, "bad_key", detail)
        now = reading.difference
        if now is None:
            apply_reading(mismatch, None, self.actor)
            return _Verdict(AutoRepairResult.SKIPPED, SkipReason.EQUAL_NOW)
        changed = (now.mismatch_type, now.cassandra_checksum, now.postgres_checksum) != (
            mismatch.mismatch_type,
            mismatch.cassandra_checksum,
            mismatch.postgres_checksum,
        )
        written = now.source_write_time
        recent = written is not None and written_within(
            written / 1e6, self.mapping.repair_min_age, timezone.now().timestamp()
        )
        if changed or recent:
            if not self.dry_run:
                apply_reading(mismatch, now, self.actor)
            why = "its rows changed" if changed else "its source row was written again"
            return _Verdict(AutoRepairResult.SKIPPED, SkipReason.CHANGED, f"Since detection {why}.")
        if self.dry_run:
            return _Verdict(AutoRepairResult.WOULD_REPAIR)
        context = {"policy": self.mapping.repair_policy, "job_id": str(self.job.pk)}

        def record(closed: Mismatch, entry: AuditLogEntry, note: str) -> None:
            self._record(closed, _Verdict(AutoRepairResult.REPAIRED, "", note, entry))

        try:
            result = repair_mismatch(
                mismatch,
                self.user,
                status=ResolutionStatus.AUTO_REPAIRED,
                actor=self.actor,
                refuse_source_changes=True,
                context=context,
                on_repaired=record,  # the action commits with the repair
            )
        except RepairFailed as exc:
            if exc.code == "already_resolved":
                return _Verdict(AutoRepairResult.SKIPPED, SkipReason.GONE, exc.detail)
            if exc.code == "source_changed":
                return _Verdict(AutoRepairResult.SKIPPED, SkipReason.CHANGED, exc.detail)
            return _Verdict(AutoRepairResult.FAILED, exc.code, exc.detail)
        return _Verdict(AutoRepairResult.REPAIRED, "", result.note, result.audit_entry)

    def _record(self, mismatch: Mismatch, verdict: _Verdict) -> None:
        with transaction.atomic():  # the job's progress moves with the action
            self._create_action(mismatch, verdict)
            self.progress.step(verdict.result)

    def _create_action(self, mismatch: Mismatch, verdict: _Verdict) -> None:
        AutoRepairAction.objects.create(
            job=self.job,
            mismatch=mismatch,
            table_name=self.mapping.name,
            primary_key_value=mismatch.primary_key_value,
            mismatch_type=mismatch.mismatch_type,
            policy=self.mapping.repair_policy,
            result=verdict.result,
            reason=verdict.reason,
            detail=verdict.detail,
            audit_entry=verdict.audit_entry,
        )

    def summary(self) -> dict[str, Any]:
        """The run's sums, from this job's actions (a redelivered run's included)."""
        rows = (
            AutoRepairAction.objects.filter(job=self.job)
            .values("result", "reason")
            .annotate(n=Count("pk"))
        )
        by_result: Counter[str] = Counter()
        skipped: Counter[str] = Counter()
        for row in rows:
            by_result[row["result"]] += row["n"]
            if row["result"] == AutoRepairResult.SKIPPED:
                skipped[row["reason"]] += row["n"]
        acted = sum(by_result.values())
        return {
            "status": RepairRunStatus.STOPPED if self.stopped else RepairRunStatus.DONE,
            "eligible": acted + self.deferred,
            "repaired": by_result[AutoRepairResult.REPAIRED],
            "would_repair": by_result[AutoRepairResult.WOULD_REPAIR],
            "skipped": dict(sorted(skipped.items())),
            "failed": by_result[AutoRepairResult.FAILED],
            "deferred": self.deferred,
            "not_eligible": dict(sorted(self.not_eligible.items())),
            "capped": self.capped,
        }


def _since(mismatch: Mismatch) -> dt.datetime:
    """When a difference began, as well as cdcrecon can tell: its source row's write time
    when the job read one, else when it was first seen."""
    return mismatch.source_write_time or mismatch.first_seen_at


def _batches(items: Iterator[Mismatch], size: int) -> Iterator[list[Mismatch]]:
    batch: list[Mismatch] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _empty_summary(mapping: TableMapping, started: dt.datetime) -> dict[str, Any]:
    return {
        "policy": mapping.repair_policy,
        "dry_run": mapping.repair_policy == RepairPolicy.DRY_RUN,
        "status": RepairRunStatus.DONE,
        "types": mapping.repair_types,
        "min_age_seconds": mapping.repair_min_age,
        "max_per_run": mapping.repair_max_per_run,
        "max_per_hour": mapping.repair_max_per_hour,
        "eligible": 0,
        "repaired": 0,
        "would_repair": 0,
        "skipped": {},
        "failed": 0,
        "deferred": 0,
        "not_eligible": {},
        "capped": None,
        "started_at": started.isoformat(),
        "finished_at": None,
    }


def _save(
    job: ReconciliationJob, summary: dict[str, Any], progress: runs.Progress | None = None
) -> dict[str, Any]:
    summary["finished_at"] = timezone.now().isoformat()
    fields: dict[str, Any] = {"repair_summary": summary}
    if progress is not None:  # the run is done with its summary, in one update
        fields["repair_run"] = progress.finished(summary["finished_at"])
        job.repair_run = fields["repair_run"]
    ReconciliationJob.objects.filter(pk=job.pk).update(**fields)
    job.repair_summary = summary
    logger.info("Repair policy after job %s (%s): %s", job.pk, job.table_name, summary)
    return summary
