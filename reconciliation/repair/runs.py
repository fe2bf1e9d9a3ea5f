"""A run of a table's repair policy as its job shows it while it works, and what a lost run
leaves behind.

``ReconciliationJob.repair_run`` (JSON) is written when a run starts (or resumes) and after
every difference it acts on, in the transaction that records the action, so the job shows:

* ``running``: how many differences it has acted on out of how many (``made`` / ``total``),
  how many it repaired, when it started and when it last made progress;
* ``interrupted``: no progress for longer than the broker's visibility timeout
  (``CELERY_VISIBILITY_TIMEOUT_SECONDS``): its worker died, and the broker gives the task to
  another worker once that long has passed since it was delivered;
* ``done``: the run ended; its sums are the job's ``repair_summary``.

A redelivered run of the same job resumes where the lost one stopped: the repairs already
made are closed (AUTO_REPAIRED) and never seen again; the difference a dead worker was
repairing is read again from both stores like every other (equal now: closed, nothing
written; still different: repaired under a new audit entry), so no write is repeated.  The
lost attempt's audit entry (written before the stores were touched, never completed) is
marked ABANDONED, by the resumed run before it acts or by the reaper once the run is found
interrupted (``sweep_interrupted``), whichever comes first; both hold the table's policy
lock, so the entry of an attempt still alive is never touched.  A delivery of a run already
done does nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings as django_settings
from django.db.models import Q
from django.utils import timezone

from cdcrecon.conf import DEFAULT_VISIBILITY_TIMEOUT_SECONDS
from gdpr.models import AuditAction, AuditLogEntry, StoreStatus
from reconciliation.choices import (
    AutoRepairResult,
    RepairRunState,
    RepairRunStatus,
    ResolutionStatus,
)
from reconciliation.locks import repair_policy_lock
from reconciliation.models import AutoRepairAction, Mismatch, ReconciliationJob, TableMapping

logger = logging.getLogger(__name__)

ABANDONED_NOTE = (
    "Abandoned: the repair run was lost (its worker died) before this attempt completed, so "
    "whether the target row was written is not known. The run was resumed: it read the row "
    "again from both stores and closed the difference if they agreed, else repaired it under "
    "a new audit entry."
)


def visibility_timeout() -> float:
    """Seconds the broker waits before giving an unacknowledged task to another worker."""
    options = getattr(django_settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}
    return float(options.get("visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT_SECONDS))


def resume_wait_seconds() -> float:
    """How long a redelivered run waits before trying the table's policy lock again (well
    under the visibility timeout, so the retry is not itself redelivered)."""
    return max(1.0, min(60.0, visibility_timeout() / 4))


class ResumeLater(Exception):
    """This job's run is unfinished and the table's policy lock is held elsewhere (the run
    itself, still alive on another worker; another job's run; the reaper, for an instant)."""

    def __init__(self, job_id: Any) -> None:
        super().__init__(f"The repair run after job {job_id} is held elsewhere; try later.")
        self.seconds = resume_wait_seconds()


# -- what the job shows ------------------------------------------------------------------------


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _instant(text: Any) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if isinstance(text, str) and text else None


def state_of(run: Mapping[str, Any] | None, now: dt.datetime | None = None) -> str | None:
    """running, interrupted or done (None: no run started after this job)."""
    if not run:
        return None
    if run.get("status") == RepairRunState.DONE:
        return RepairRunState.DONE
    last = _instant(run.get("last_progress_at")) or _instant(run.get("started_at"))
    idle = ((now or timezone.now()) - last).total_seconds() if last else float("inf")
    return RepairRunState.INTERRUPTED if idle > visibility_timeout() else RepairRunState.RUNNING


def run_view(
    run: Mapping[str, Any] | None, now: dt.datetime | None = None
) -> dict[str, Any] | None:
    """The job JSON's ``repair_run``: the stored run with its state as of ``now``."""
    if not run:
        return None
    return {**run, "status": state_of(run, now)}


def describe_run(run: Mapping[str, Any] | None, summary: Mapping[str, Any] | None) -> str:
    """One line for people (the admin's job page): where the run is, then what it did."""
    parts = []
    state = state_of(run)
    if run and state:
        line = (
            f"{state}: acted on {run.get('made', 0)} of {run.get('total', 0)} "
            f"({run.get('repaired', 0)} repaired), started {run.get('started_at')}, "
            f"last progress {run.get('last_progress_at')}"
        )
        if (run.get("deliveries") or 1) > 1:
            line += f", delivered {run['deliveries']} times (resumed {run.get('resumed_at')})"
        if run.get("abandoned_audit_entries"):
            line += f", {run['abandoned_audit_entries']} lost attempt(s) audited as ABANDONED"
        if state == RepairRunState.INTERRUPTED:
            line += (
                f"; no progress for over {visibility_timeout():.0f} s: its worker died, the "
                "next worker to start (or the next sweep of a running one) resumes it"
            )
        parts.append(line)
    if summary:
        parts.append(describe_summary(dict(summary)))
    return " | ".join(parts) or "No repair policy ran after this job."


def describe_summary(summary: dict[str, Any]) -> str:
    """One line for people: what a policy run did."""
    policy = f"{summary.get('policy')}"
    if summary.get("status") == RepairRunStatus.KILL_SWITCH:
        return f"{policy}, switched off by RECONCILIATION_AUTO_REPAIR_ENABLED=false"
    if summary.get("status") == RepairRunStatus.BUSY:
        return f"{policy}, not run: another run of this table's policy was in progress"
    done = "would repair" if summary.get("dry_run") else "repaired"
    count = summary.get("would_repair" if summary.get("dry_run") else "repaired", 0)
    skipped = summary.get("skipped") or {}
    parts = [
        f"{policy}: {summary.get('eligible', 0)} eligible, {done} {count}",
        "skipped " + (", ".join(f"{n} {why}" for why, n in skipped.items()) or "0"),
        f"failed {summary.get('failed', 0)}",
    ]
    if summary.get("capped"):
        parts.append(
            f"stopped at the {summary['capped'].replace('_', ' ')} cap, "
            f"{summary.get('deferred', 0)} left for later"
        )
    if summary.get("status") == RepairRunStatus.STOPPED:
        parts.append(f"stopped: the policy was switched off, {summary.get('deferred', 0)} left")
    if summary.get("status") == RepairRunStatus.FAILED:
        parts.append(f"stopped: {summary.get('error')}")
    return "; ".join(parts)


# -- a run's life ------------------------------------------------------------------------------


def is_done(job: ReconciliationJob) -> bool:
    """Whether this job's run already ended (a late redelivery has nothing to do)."""
    return state_of(job.repair_run) == RepairRunState.DONE and job.repair_summary is not None


def refuse_if_resuming(job: ReconciliationJob) -> None:
    """The table's policy lock is held elsewhere: ``ResumeLater`` when this job's own run is
    unfinished (the task tries again), else return (this job's run is recorded as busy)."""
    run = ReconciliationJob.objects.values_list("repair_run", flat=True).get(pk=job.pk)
    if run and run.get("status") != RepairRunState.DONE:
        raise ResumeLater(job.pk)


@dataclass
class Progress:
    """The run's ``repair_run`` as this delivery updates it."""

    job_id: Any
    body: dict[str, Any]

    def store(self) -> None:
        ReconciliationJob.objects.filter(pk=self.job_id).update(repair_run=self.body)

    def step(self, result: str) -> None:
        """One difference acted on (call it in the transaction that records the action)."""
        self.body["made"] += 1
        if result == AutoRepairResult.REPAIRED:
            self.body["repaired"] += 1
        self.body["last_progress_at"] = _iso(timezone.now())
        self.store()

    def finished(self, at: str) -> dict[str, Any]:
        """The body of the ended run (stored with the summary, in one update)."""
        self.body.update(status=RepairRunState.DONE, finished_at=at, last_progress_at=at)
        return self.body


def begin(job: ReconciliationJob, mapping: TableMapping) -> Progress:
    """Start the run after ``job``, or resume it (a redelivery): called holding the table's
    policy lock, so no attempt of this run is alive and any open entry of it is abandoned."""
    now = timezone.now()
    previous = ReconciliationJob.objects.values_list("repair_run", flat=True).get(pk=job.pk) or {}
    abandoned = abandon_open_entries(job.pk, mapping.name, now)
    actions = AutoRepairAction.objects.filter(job=job)
    made = actions.count()
    body = {
        "status": RepairRunState.RUNNING,
        "started_at": previous.get("started_at") or _iso(now),
        "resumed_at": _iso(now) if previous else None,
        "last_progress_at": _iso(now),
        "finished_at": None,
        "made": made,
        "repaired": actions.filter(result=AutoRepairResult.REPAIRED).count(),
        "total": made + eligible_count(mapping, now),
        "deliveries": int(previous.get("deliveries") or 0) + 1,
        "worker": f"{socket.gethostname()} pid {os.getpid()}",
        "abandoned_audit_entries": int(previous.get("abandoned_audit_entries") or 0) + abandoned,
    }
    if previous:
        logger.warning(
            "Resuming the repair run after job %s (%s): %s done before, %s lost attempt(s) "
            "marked ABANDONED",
            job.pk,
            mapping.name,
            made,
            abandoned,
        )
    progress = Progress(job.pk, body)
    progress.store()
    return progress


def stop_lost_run(job: ReconciliationJob, mapping: TableMapping) -> Progress | None:
    """The kill switch met a lost run of this job: its lost attempts abandoned, the run to
    be recorded done with the kill switch's summary.  None: no unfinished run, or one that
    holds the table's lock (alive elsewhere)."""
    run = ReconciliationJob.objects.values_list("repair_run", flat=True).get(pk=job.pk)
    if not run or run.get("status") == RepairRunState.DONE:
        return None
    with repair_policy_lock(mapping.pk) as mine:
        if not mine:
            return None
        abandoned = abandon_open_entries(job.pk, mapping.name)
    run["abandoned_audit_entries"] = int(run.get("abandoned_audit_entries") or 0) + abandoned
    return Progress(job.pk, run)


def eligible_count(mapping: TableMapping, now: dt.datetime) -> int:
    """The open differences the policy would act on now (of an allowed type, old enough:
    the same rule as the run's, counted by the database)."""
    cutoff = now - dt.timedelta(seconds=mapping.repair_min_age)
    return (
        Mismatch.objects.filter(
            table_name=mapping.name,
            resolution_status=ResolutionStatus.PENDING,
            mismatch_type__in=mapping.repair_types,
        )
        .filter(
            Q(source_write_time__lte=cutoff)
            | Q(source_write_time__isnull=True, first_seen_at__lte=cutoff)
        )
        .count()
    )


def abandon_open_entries(job_id: Any, table_name: str, now: dt.datetime | None = None) -> int:
    """Mark ABANDONED the repair audit entries of the run after ``job_id`` that were started
    and never completed; how many.  Only while holding the table's policy lock."""
    now = now or timezone.now()
    entries = AuditLogEntry.objects.filter(
        action=AuditAction.REPAIR,
        completed_at__isnull=True,
        requester=f"policy:{table_name}",
        details__job_id=str(job_id),
    )
    count = 0
    for entry in entries:
        details = {**entry.details, "action": "abandoned", "abandoned_at": _iso(now)}
        count += AuditLogEntry.objects.filter(pk=entry.pk, completed_at__isnull=True).update(
            completed_at=now,
            cassandra_status=StoreStatus.ABANDONED,
            postgres_status=StoreStatus.ABANDONED,
            postgres_error=ABANDONED_NOTE,
            details=details,
        )
    return count


def sweep_interrupted(now: dt.datetime | None = None) -> list[str]:
    """The reaper's part: for every run found interrupted whose table's policy lock is free
    (no run of the table alive), mark its lost attempts' audit entries ABANDONED.  The run
    itself is resumed by the broker's redelivery.  Returns the jobs' ids."""
    now = now or timezone.now()
    found: list[str] = []
    running = ReconciliationJob.objects.filter(repair_run__status=RepairRunState.RUNNING)
    for job_id, table_name, run in running.values_list("job_id", "table_name", "repair_run"):
        if state_of(run, now) != RepairRunState.INTERRUPTED:
            continue
        mapping_id = TableMapping.objects.filter(name=table_name).values_list("pk", flat=True)
        if not mapping_id:
            continue
        with repair_policy_lock(mapping_id[0]) as mine:
            if not mine:  # a run of this table is alive: perhaps this one, resumed
                continue
            abandoned = abandon_open_entries(job_id, table_name, now)
            if abandoned:
                stored = ReconciliationJob.objects.values_list("repair_run", flat=True)
                fresh: dict[str, Any] = stored.get(pk=job_id) or {}
                fresh["abandoned_audit_entries"] = (
                    int(fresh.get("abandoned_audit_entries") or 0) + abandoned
                )
                ReconciliationJob.objects.filter(pk=job_id).update(repair_run=fresh)
                logger.warning(
                    "The repair run after job %s (%s) is interrupted: %s lost attempt(s) "
                    "marked ABANDONED",
                    job_id,
                    table_name,
                    abandoned,
                )
            found.append(str(job_id))
    return found
