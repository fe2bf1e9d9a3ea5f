"""Beat's schedule follows the settings, idempotently; the scheduled run enqueues per table."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

import pytest
from django.core.management import call_command
from django.core.management.sql import emit_post_migrate_signal
from django.test import override_settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from cdcrecon.celery import app
from cdcrecon.conf import settings
from reconciliation.choices import JobStatus, JobType, ValidationStrategy
from reconciliation.jobs.schedule import (
    REAPER_TASK,
    REAPER_TASK_NAME,
    SCHEDULE_TASK,
    SCHEDULE_TASK_NAME,
    enqueue_scheduled_jobs,
    sync_schedule,
)
from reconciliation.models import ReconciliationJob, TableMapping
from tests.factories import JobFactory, TableMappingFactory

pytestmark = pytest.mark.django_db


def reconciliation_settings(**changes):
    return override_settings(RECONCILIATION=dataclasses.replace(settings.reconciliation, **changes))


def scheduled() -> PeriodicTask:
    return PeriodicTask.objects.get(name=SCHEDULE_TASK_NAME)


def test_migrate_created_the_schedule_and_the_reaper() -> None:
    schedule, reaper = scheduled(), PeriodicTask.objects.get(name=REAPER_TASK_NAME)

    assert (schedule.task, schedule.enabled) == (SCHEDULE_TASK, True)
    assert (schedule.interval.every, schedule.interval.period) == (
        settings.reconciliation.interval_minutes,
        IntervalSchedule.MINUTES,
    )
    assert (reaper.task, reaper.enabled, reaper.interval.every) == (REAPER_TASK, True, 1)
    assert schedule.expire_seconds < schedule.interval.every * 60  # runs never pile up


def test_the_post_migrate_handler_recreates_missing_tasks() -> None:
    PeriodicTask.objects.all().delete()

    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")

    assert PeriodicTask.objects.filter(name__in=[SCHEDULE_TASK_NAME, REAPER_TASK_NAME]).count() == 2


def test_syncing_twice_changes_nothing() -> None:
    before = list(PeriodicTask.objects.order_by("pk").values_list("pk", "name", "interval_id"))

    sync_schedule()
    sync_schedule()

    after = list(PeriodicTask.objects.order_by("pk").values_list("pk", "name", "interval_id"))
    assert after == before


def test_a_new_interval_updates_the_existing_task_instead_of_adding_one() -> None:
    original = scheduled()

    with reconciliation_settings(interval_minutes=15):
        call_command("sync_schedule", verbosity=0)

    updated = scheduled()
    assert updated.pk == original.pk
    assert updated.interval.every == 15
    assert updated.expire_seconds == 15 * 60 * 0.9
    assert PeriodicTask.objects.filter(task=SCHEDULE_TASK).count() == 1


def test_reconciliation_enabled_false_disables_the_schedule_but_not_the_reaper(capsys) -> None:
    with reconciliation_settings(enabled=False):
        call_command("sync_schedule")
    assert "disabled" in capsys.readouterr().out
    assert scheduled().enabled is False
    assert PeriodicTask.objects.get(name=REAPER_TASK_NAME).enabled is True

    sync_schedule()  # enabled again
    assert scheduled().enabled is True


def test_beats_database_scheduler_sees_the_schedule_only_while_enabled() -> None:
    def entries() -> dict:
        return DatabaseScheduler(app=app, lazy=True).all_as_schedule()

    with reconciliation_settings(interval_minutes=30):
        sync_schedule()
    entry = entries()[SCHEDULE_TASK_NAME]
    assert entry.task == SCHEDULE_TASK
    assert entry.schedule.run_every == dt.timedelta(minutes=30)

    with reconciliation_settings(enabled=False):
        sync_schedule()
    assert SCHEDULE_TASK_NAME not in entries()
    assert REAPER_TASK_NAME in entries()


def test_a_scheduled_run_enqueues_one_hourly_job_per_enabled_table_with_its_strategy(
    django_capture_on_commit_callbacks,
) -> None:
    TableMappingFactory(name="invoices", scheduled_strategy=ValidationStrategy.SAMPLE)
    TableMappingFactory(name="archive", enabled=False)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        jobs = enqueue_scheduled_jobs()

    expected = {*settings.reconciliation.tables, "invoices"}
    assert {job.table_name for job in jobs} == expected
    assert len(queued) == len(expected)
    stored = {j.table_name: j for j in ReconciliationJob.objects.all()}
    assert set(stored) == expected
    assert {j.job_type for j in stored.values()} == {JobType.HOURLY_SCHEDULED}
    assert {j.status for j in stored.values()} == {JobStatus.RUNNING}
    assert stored["invoices"].validation_strategy == ValidationStrategy.SAMPLE
    for name in settings.reconciliation.tables:
        assert (
            stored[name].validation_strategy
            == TableMapping.objects.get(name=name).scheduled_strategy
        )


def test_a_table_with_a_running_job_is_skipped_with_a_log_line(
    caplog, django_capture_on_commit_callbacks
) -> None:
    busy = settings.reconciliation.tables[0]
    running = JobFactory(table_name=busy, status=JobStatus.RUNNING)

    with caplog.at_level(logging.INFO, logger="reconciliation.schedule"):
        with django_capture_on_commit_callbacks(execute=False):
            jobs = enqueue_scheduled_jobs()

    assert busy not in {job.table_name for job in jobs}
    assert len(jobs) == len(settings.reconciliation.tables) - 1
    assert ReconciliationJob.objects.filter(table_name=busy).get() == running
    assert any(busy in r.getMessage() and "skips" in r.getMessage() for r in caplog.records)


def test_a_scheduled_run_does_nothing_while_reconciliation_is_disabled() -> None:
    with reconciliation_settings(enabled=False):
        assert enqueue_scheduled_jobs() == []
    assert not ReconciliationJob.objects.exists()
