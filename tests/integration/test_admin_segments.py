"""The job's page in the admin lists its segments (where each ran, how it went, how long it
took), and a FAILED job can be resumed from there or from the job list."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from reconciliation.choices import JobStatus, SegmentKind, SegmentStatus
from reconciliation.models import JobSegment, ReconciliationJob
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db

JOBS = reverse("admin:reconciliation_reconciliationjob_changelist")
T0 = dt.datetime(2025, 11, 25, 10, 0, tzinfo=dt.UTC)


def job_page(job: ReconciliationJob) -> str:
    return reverse("admin:reconciliation_reconciliationjob_change", args=[job.job_id])


def staff(django_user_model: Any, name: str, *codenames: str) -> Any:
    user = django_user_model.objects.create_user(name, password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def viewer(client: Any, django_user_model: Any) -> Any:
    client.force_login(staff(django_user_model, "viewer", "view_reconciliationjob"))
    return client


@pytest.fixture
def runner(client: Any, django_user_model: Any) -> Any:
    client.force_login(
        staff(django_user_model, "runner", "view_reconciliationjob", "add_reconciliationjob")
    )
    return client


def failed_job(table: str = "users", **fields: Any) -> ReconciliationJob:
    defaults: dict[str, Any] = {
        "validation_strategy": "CHECKSUM",
        "status": JobStatus.FAILED,
        "error_message": "Cassandra is unreachable: no host available.",
    }
    return JobFactory(table_name=table, **{**defaults, **fields})


def segment(job: ReconciliationJob, kind: str, number: int, status: str, **fields: Any) -> Any:
    ranges = {"range_start": number * 1000, "range_end": (number + 1) * 1000}
    return JobSegment.objects.create(
        job=job, kind=kind, number=number, status=status, **{**ranges, **fields}
    )


def segment_rows(html: str) -> list[str]:
    """Each listed segment's row, its cells' text joined by " | "."""
    rows = re.findall(r'<tr class="cdc-segment [^"]*">(.*?)</tr>', html, re.S)
    return [
        " | ".join(
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ).strip()
        for row in rows
    ]


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_the_job_page_lists_its_segments_with_worker_status_timings_and_counts(viewer) -> None:
    job = failed_job()
    segment(
        job,
        SegmentKind.STAGE,
        0,
        SegmentStatus.DONE,
        range_end=None,
        attempts=1,
        worker="host-b:77",
        started_at=T0,
        finished_at=T0 + dt.timedelta(seconds=2.5),
        postgres_rows=12_345,
    )
    segment(
        job,
        SegmentKind.COMPARE,
        0,
        SegmentStatus.DONE,
        attempts=2,
        worker="host-a:4242",
        started_at=T0 + dt.timedelta(seconds=3),
        finished_at=T0 + dt.timedelta(seconds=10),
        cassandra_rows=1_000_001,
        postgres_rows=999_999,
        difference_count=3,
    )
    segment(
        job,
        SegmentKind.COMPARE,
        1,
        SegmentStatus.RUNNING,
        attempts=1,
        worker="host-c:9",
        started_at=T0 + dt.timedelta(seconds=4),
        error_message="Cassandra read timed out on token range 1000..2000.",
    )

    response = viewer.get(job_page(job))

    assert response.status_code == 200
    html = response.content.decode()
    assert "COMPARE: 1 of 2 done (1 running)" in html
    assert "STAGE: 1 of 1 done" in html
    rows = segment_rows(html)
    assert rows == [
        # unfinished first, then stage before compare, in order
        "COMPARE | 1 | (1000, 2000] | RUNNING | 1 | host-c:9 | 10:00:04 | — | — | — | — | —",
        "STAGE | 0 | [0, end) | DONE | 1 | host-b:77 | 10:00:00 | 10:00:02 | 2.5 s | — "
        "| 12,345 | —",
        "COMPARE | 0 | (0, 1000] | DONE | 2 | host-a:4242 | 10:00:03 | 10:00:10 | 7.0 s "
        "| 1,000,001 | 999,999 | 3",
    ]
    # A segment's error on a line of its own, under it.
    assert re.search(
        r'<tr class="cdc-segment-error">.*Cassandra read timed out on token range 1000..2000.',
        html,
    )
    assert "1 of 2 token ranges compared" in html  # beside the progress


def test_a_job_without_segments_says_so(viewer) -> None:
    job = JobFactory(validation_strategy="SAMPLE")

    html = viewer.get(job_page(job)).content.decode()

    assert "not split into segments" in html
    assert segment_rows(html) == []


def test_a_job_with_many_segments_shows_the_first_200_unfinished_first(viewer) -> None:
    job = failed_job()
    JobSegment.objects.bulk_create(
        JobSegment(
            job=job,
            kind=SegmentKind.COMPARE,
            number=n,
            range_start=n,
            range_end=n + 1,
            status=SegmentStatus.PENDING if n == 250 else SegmentStatus.DONE,
        )
        for n in range(300)
    )

    html = viewer.get(job_page(job)).content.decode()

    rows = segment_rows(html)
    assert len(rows) == 200
    assert rows[0].startswith("COMPARE | 250 | (250, 251] | PENDING")
    assert "Showing 200 of 300 segments" in html


def test_the_resume_button_is_offered_on_a_failed_job_to_those_who_may_trigger(
    runner, client, django_user_model
) -> None:
    failed = failed_job()
    completed = JobFactory()

    assert 'value="resume_failed_jobs"' in runner.get(job_page(failed)).content.decode()
    assert 'value="resume_failed_jobs"' not in runner.get(job_page(completed)).content.decode()
    client.force_login(staff(django_user_model, "watcher", "view_reconciliationjob"))
    assert 'value="resume_failed_jobs"' not in client.get(job_page(failed)).content.decode()


def test_the_resume_button_resumes_the_job_and_comes_back_to_its_page(
    runner, django_capture_on_commit_callbacks
) -> None:
    job = failed_job()
    done = segment(job, SegmentKind.COMPARE, 0, SegmentStatus.DONE, attempts=1, worker="a:1")
    died = segment(job, SegmentKind.COMPARE, 1, SegmentStatus.RUNNING, attempts=1, worker="b:2")

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = runner.post(
            JOBS,
            {
                "action": "resume_failed_jobs",
                "_selected_action": [job.pk],
                "_from_job_page": "1",
            },
        )

    assert response.status_code == 302
    assert response["Location"] == job_page(job)
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert JobSegment.objects.get(pk=done.pk).status == SegmentStatus.DONE
    assert JobSegment.objects.get(pk=died.pk).status == SegmentStatus.PENDING
    assert queued
    (message,) = messages_of(response)
    assert message.startswith("Resumed users CHECKSUM job")
    assert "1 of 2 segments to run again" in message


def test_the_resume_action_reports_each_job_and_resumes_only_failed_ones(
    runner, django_capture_on_commit_callbacks
) -> None:
    failed = failed_job("users")
    completed = JobFactory(table_name="orders")
    blocked = failed_job("sessions")
    busy = JobFactory(table_name="sessions", status=JobStatus.RUNNING)

    with django_capture_on_commit_callbacks(execute=False):
        response = runner.post(
            JOBS,
            {
                "action": "resume_failed_jobs",
                "_selected_action": [failed.pk, completed.pk, blocked.pk],
            },
            follow=True,
        )

    assert response.status_code == 200
    notes = messages_of(response)
    assert len(notes) == 3
    assert any(n.startswith("Resumed users CHECKSUM job") for n in notes)
    assert any(f"job {completed.job_id}: not resumed" in n for n in notes)
    assert any(f"job {blocked.job_id}: not resumed" in n and str(busy.job_id) in n for n in notes)
    statuses = dict(ReconciliationJob.objects.values_list("job_id", "status"))
    assert statuses == {
        failed.job_id: JobStatus.RUNNING,
        completed.job_id: JobStatus.COMPLETED,
        blocked.job_id: JobStatus.FAILED,
        busy.job_id: JobStatus.RUNNING,
    }


def test_the_resume_action_needs_the_trigger_permission(viewer) -> None:
    job = failed_job()

    listed = viewer.get(JOBS).content.decode()
    response = viewer.post(JOBS, {"action": "resume_failed_jobs", "_selected_action": [job.pk]})

    assert 'value="resume_failed_jobs"' not in listed
    assert response.status_code in (200, 302)
    assert ReconciliationJob.objects.get(pk=job.pk).status == JobStatus.FAILED
