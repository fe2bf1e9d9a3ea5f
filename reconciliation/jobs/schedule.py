"""The periodic side of cdcrecon: beat's schedule, the scheduled run and the reaper.

Plain functions, called from the ``post_migrate`` handler, ``manage.py sync_schedule``, the
Celery tasks and the tests.

* ``sync_schedule()`` creates or updates three django-celery-beat PeriodicTasks, found by
  fixed names so re-syncing never adds a second: the scheduled reconciliation (every
  RECONCILIATION_INTERVAL_MINUTES, enabled by RECONCILIATION_ENABLED), the reaper and the
  in-flight re-check's sweep (``reconciliation.ledger.inflight``; both every minute, always
  enabled: manual jobs need them even when the schedule is off).
* ``enqueue_scheduled_jobs()`` creates one HOURLY_SCHEDULED job per enabled table and queues
  it; a table with a job already running is skipped with a log line.
* ``reap_stalled_jobs()`` fails RUNNING jobs whose heartbeat is older than
  RECONCILIATION_HEARTBEAT_TIMEOUT_SECONDS (a FAILED job can be resumed: its finished
  segments are kept).
* ``drop_stale_staging()`` (run with the reaper) drops the staging tables no job will read
  again: a deleted or completed job's, and a FAILED job's after STAGING_KEEP_DAYS.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from cdcrecon.conf import settings
from reconciliation.choices import JobStatus, JobType
from reconciliation.jobs import staging
from reconciliation.jobs.create import JobAlreadyRunning, create_job
from reconciliation.jobs.queue import REAP_STALLED, RECHECK_IN_FLIGHT, RUN_SCHEDULED, enqueue_job
from reconciliation.models import ReconciliationJob, TableMapping
from reconciliation.registry import register_configured_tables

logger = logging.getLogger(__name__)

SCHEDULE_TASK_NAME = "cdcrecon: scheduled reconciliation"
SCHEDULE_TASK = RUN_SCHEDULED
REAPER_TASK_NAME = "cdcrecon: reap stalled jobs"
REAPER_TASK = REAP_STALLED
REAPER_INTERVAL_MINUTES = 1
IN_FLIGHT_TASK_NAME = "cdcrecon: re-check in-flight differences"
IN_FLIGHT_TASK = RECHECK_IN_FLIGHT
IN_FLIGHT_INTERVAL_MINUTES = 1


@dataclass(frozen=True)
class ScheduleState:
    interval_minutes: int
    enabled: bool
    reaper_enabled: bool


def _interval(minutes: int, using: str) -> IntervalSchedule:
    schedule, _ = IntervalSchedule.objects.using(using).get_or_create(
        every=minutes, period=IntervalSchedule.MINUTES
    )
    return schedule


def _periodic_task(
    name: str, task: str, minutes: int, enabled: bool, description: str, using: str
) -> PeriodicTask:
    # A message not picked up within ~90% of the period is dropped, so runs never pile up
    # behind a stopped worker.
    expire_seconds = max(30, int(minutes * 60 * 0.9))
    periodic, _ = PeriodicTask.objects.using(using).update_or_create(
        name=name,
        defaults={
            "task": task,
            "interval": _interval(minutes, using),
            "crontab": None,
            "solar": None,
            "clocked": None,
            "one_off": False,
            "enabled": enabled,
            "expire_seconds": expire_seconds,
            "description": description,
        },
    )
    return periodic


def sync_schedule(using: str = "default") -> ScheduleState:
    """Make beat's PeriodicTasks match the settings (idempotent)."""
    config = settings.reconciliation
    with transaction.atomic(using=using):
        _periodic_task(
            SCHEDULE_TASK_NAME,
            SCHEDULE_TASK,
            config.interval_minutes,
            config.enabled,
            "One HOURLY_SCHEDULED job per enabled table. Managed by cdcrecon from "
            "RECONCILIATION_INTERVAL_MINUTES and RECONCILIATION_ENABLED: edits here are "
            "overwritten by `manage.py sync_schedule` and `migrate`.",
            using,
        )
        _periodic_task(
            REAPER_TASK_NAME,
            REAPER_TASK,
            REAPER_INTERVAL_MINUTES,
            True,
            "Marks FAILED any RUNNING job whose heartbeat is older than "
            "RECONCILIATION_HEARTBEAT_TIMEOUT_SECONDS. Managed by cdcrecon.",
            using,
        )
        _periodic_task(
            IN_FLIGHT_TASK_NAME,
            IN_FLIGHT_TASK,
            IN_FLIGHT_INTERVAL_MINUTES,
            True,
            "Re-reads the differences found in flight (within a table's CDC lag budget) once "
            "their budget has passed: healed, drift, or expired. A sweep behind the re-check "
            "each job queues for itself. Managed by cdcrecon.",
            using,
        )
    return ScheduleState(config.interval_minutes, config.enabled, reaper_enabled=True)


def scheduled_tables() -> list[TableMapping]:
    """The configured tables (registered on the way) plus every enabled TableMapping."""
    register_configured_tables()
    return list(TableMapping.objects.filter(enabled=True).order_by("name"))


def enqueue_scheduled_jobs() -> list[ReconciliationJob]:
    """Create and queue one HOURLY_SCHEDULED job per enabled table; skip busy tables."""
    if not settings.reconciliation.enabled:
        logger.info("Scheduled reconciliation is off (RECONCILIATION_ENABLED=false)")
        return []
    jobs: list[ReconciliationJob] = []
    for mapping in scheduled_tables():
        try:
            with transaction.atomic():
                job = create_job(
                    mapping, mapping.scheduled_strategy, job_type=JobType.HOURLY_SCHEDULED
                )
                enqueue_job(job)
        except JobAlreadyRunning as exc:
            logger.info("Scheduled run skips table %s: %s", mapping.name, exc)
            continue
        except IntegrityError:  # the running job ended while we looked: next run has it
            logger.info("Scheduled run skips table %s: its job just finished", mapping.name)
            continue
        logger.info(
            "Scheduled %s job %s for table %s", job.validation_strategy, job.pk, mapping.name
        )
        jobs.append(job)
    return jobs


def reap_stalled_jobs(now: dt.datetime | None = None) -> list[ReconciliationJob]:
    """Mark FAILED every RUNNING job with no heartbeat for heartbeat_timeout_seconds.

    Rows are locked (skipping ones another reaper holds) and the heartbeat condition is
    re-checked under the lock, so a job that beats at the last moment is left alone.
    """
    timeout = settings.reconciliation.heartbeat_timeout_seconds
    cutoff = (now or timezone.now()) - dt.timedelta(seconds=timeout)
    reaped: list[ReconciliationJob] = []
    with transaction.atomic():
        stalled = (
            ReconciliationJob.objects.select_for_update(skip_locked=True)
            .filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff)
            .order_by("started_at")
        )
        for job in stalled:
            last = job.heartbeat_at.astimezone(dt.UTC)
            if job.mark_failed(
                f"Marked FAILED by the reaper: no heartbeat for more than {timeout} s "
                f"(RECONCILIATION_HEARTBEAT_TIMEOUT_SECONDS); no sign of life since "
                f"{last:%Y-%m-%d %H:%M:%S} UTC. The worker running it probably died."
            ):
                logger.warning("Reaped job %s (%s): %s", job.pk, job.table_name, job.error_message)
                reaped.append(job)
    return reaped


STAGING_KEEP_DAYS = 7


def drop_stale_staging(now: dt.datetime | None = None) -> list[str]:
    """Drop the staging tables of jobs that are gone, COMPLETED, or FAILED more than
    STAGING_KEEP_DAYS ago (until then a resume reuses them); the names dropped."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=STAGING_KEEP_DAYS)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename LIKE %s",
            [staging.PREFIX.replace("_", r"\_") + "%"],
        )
        names = [row[0] for row in cursor.fetchall()]
    by_job = {staging.job_id_of(name): name for name in names}
    keep = set(
        ReconciliationJob.objects.filter(pk__in=[j for j in by_job if j is not None])
        .filter(Q(status=JobStatus.RUNNING) | Q(status=JobStatus.FAILED, completed_at__gte=cutoff))
        .values_list("pk", flat=True)
    )
    dropped = [name for job_id, name in by_job.items() if job_id not in keep]
    for name in dropped:
        staging.drop_table(name)
    return dropped
