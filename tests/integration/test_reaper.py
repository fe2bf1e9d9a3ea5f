"""The reaper fails RUNNING jobs whose heartbeat stopped, and leaves the living alone."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from cdcrecon.conf import settings
from reconciliation.choices import JobStatus
from reconciliation.jobs.schedule import reap_stalled_jobs
from reconciliation.tasks import reap_stalled_jobs as reap_task
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db


def running_job(silent_for: float):
    """A RUNNING job whose last heartbeat was ``silent_for`` seconds ago."""
    last = timezone.now() - dt.timedelta(seconds=silent_for)
    return JobFactory(
        status=JobStatus.RUNNING, started_at=last - dt.timedelta(minutes=5), heartbeat_at=last
    )


def test_a_running_job_silent_longer_than_the_timeout_is_marked_failed() -> None:
    timeout = settings.reconciliation.heartbeat_timeout_seconds
    stalled = running_job(silent_for=timeout + 60)
    last_heartbeat = stalled.heartbeat_at

    reaped = reap_stalled_jobs()

    assert [job.pk for job in reaped] == [stalled.pk]
    stalled.refresh_from_db()
    assert stalled.status == JobStatus.FAILED
    assert stalled.completed_at is not None
    assert "heartbeat" in stalled.error_message
    assert f"no sign of life since {last_heartbeat:%Y-%m-%d %H:%M:%S} UTC" in stalled.error_message


def test_a_job_with_a_recent_heartbeat_is_left_running() -> None:
    alive = running_job(silent_for=settings.reconciliation.heartbeat_timeout_seconds - 30)

    assert reap_stalled_jobs() == []

    alive.refresh_from_db()
    assert alive.status == JobStatus.RUNNING


def test_a_job_that_beats_again_is_not_reaped() -> None:
    job = running_job(silent_for=settings.reconciliation.heartbeat_timeout_seconds + 60)
    job.touch()

    assert reap_stalled_jobs() == []
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING


def test_finished_jobs_are_never_touched() -> None:
    old = timezone.now() - dt.timedelta(days=2)
    done = JobFactory(status=JobStatus.COMPLETED, started_at=old, heartbeat_at=old)
    failed = JobFactory(
        status=JobStatus.FAILED, started_at=old, heartbeat_at=old, error_message="boom"
    )

    assert reap_stalled_jobs() == []

    done.refresh_from_db()
    failed.refresh_from_db()
    assert (done.status, failed.status, failed.error_message) == ("COMPLETED", "FAILED", "boom")


def test_the_reaper_task_reports_the_jobs_it_failed() -> None:
    stalled = running_job(silent_for=settings.reconciliation.heartbeat_timeout_seconds * 2)
    running_job(silent_for=1)

    result = reap_task.apply()

    assert result.get() == [str(stalled.pk)]
