"""POST /reconciliation/jobs/{job_id}/resume: a FAILED job runs again, only its unfinished
segments; 409 for a job that is not FAILED or whose table is busy; the trigger's rules."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from django.utils import timezone

from reconciliation.choices import JobPhase, JobStatus, SegmentKind, SegmentStatus
from reconciliation.models import JobSegment, ReconciliationJob
from tests.factories import JobFactory
from tests.guide import JOB_EXTRA_FIELDS, JOB_FIELDS
from tests.integration.conftest import TRIGGER_JOBS, VIEW_JOBS

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2025, 11, 25, 10, 0, tzinfo=dt.UTC)


def resume(client: Any, job_id: Any) -> Any:
    return client.post(f"/reconciliation/jobs/{job_id}/resume")


def failed_job(table: str = "users", **fields: Any) -> ReconciliationJob:
    defaults: dict[str, Any] = {
        "validation_strategy": "CHECKSUM",
        "status": JobStatus.FAILED,
        "phase": JobPhase.READING,
        "error_message": "Cassandra is unreachable: no host available.",
        "cassandra_row_count": None,
        "postgres_row_count": None,
        "mismatch_count": 0,
        "drift_percentage": None,
    }
    return JobFactory(table_name=table, **{**defaults, **fields})


def segment(job: ReconciliationJob, kind: str, number: int, status: str, **fields: Any) -> Any:
    ran = status != SegmentStatus.PENDING
    done = status == SegmentStatus.DONE
    defaults: dict[str, Any] = {
        "range_start": number * 1000,
        "range_end": (number + 1) * 1000,
        "attempts": 1 if ran else 0,
        "worker": "worker-a:4242" if ran else "",
        "queued_at": T0 if ran else None,
        "started_at": T0 if ran and status != SegmentStatus.QUEUED else None,
        "finished_at": T0 + dt.timedelta(seconds=3) if done else None,
        "cassandra_rows": 500 if done and kind == SegmentKind.COMPARE else 0,
        "postgres_rows": 499 if done else 0,
        "difference_count": 1 if done and kind == SegmentKind.COMPARE else 0,
    }
    return JobSegment.objects.create(
        job=job, kind=kind, number=number, status=status, **{**defaults, **fields}
    )


def half_done(job: ReconciliationJob) -> dict[str, JobSegment]:
    """Both STAGE segments done; COMPARE: two done, one died running, one queued, one pending."""
    return {
        "stage0": segment(job, SegmentKind.STAGE, 0, SegmentStatus.DONE),
        "stage1": segment(job, SegmentKind.STAGE, 1, SegmentStatus.DONE),
        "done0": segment(job, SegmentKind.COMPARE, 0, SegmentStatus.DONE, attempts=2),
        "done1": segment(job, SegmentKind.COMPARE, 1, SegmentStatus.DONE),
        "running": segment(job, SegmentKind.COMPARE, 2, SegmentStatus.RUNNING),
        "queued": segment(job, SegmentKind.COMPARE, 3, SegmentStatus.QUEUED),
        "pending": segment(job, SegmentKind.COMPARE, 4, SegmentStatus.PENDING),
    }


def test_a_failed_job_is_running_again_with_only_its_unfinished_segments_to_redo(
    operator, django_capture_on_commit_callbacks
) -> None:
    job = failed_job()
    segments = half_done(job)
    before = {
        name: JobSegment.objects.filter(pk=s.pk).values().get() for name, s in segments.items()
    }

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = resume(operator, job.job_id)

    assert response.status_code == 202, response.json()
    body = response.json()
    assert set(body) == JOB_FIELDS | JOB_EXTRA_FIELDS
    assert body["job_id"] == str(job.job_id)
    assert body["status"] == "RUNNING"
    assert body["error_message"] is None
    assert (body["segments_total"], body["segments_done"]) == (5, 2)
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert job.error_message == ""
    after = {
        name: JobSegment.objects.filter(pk=s.pk).values().get() for name, s in segments.items()
    }
    for name in ("stage0", "stage1", "done0", "done1"):
        assert after[name] == before[name], name  # finished work is kept as it was
    for name in ("running", "queued", "pending"):
        assert after[name]["status"] == SegmentStatus.PENDING, name
        assert after[name]["attempts"] == before[name]["attempts"], name
    assert queued, "the resumed job is queued once the transaction commits"


def test_the_resumed_job_reads_back_running_with_its_segment_counts(
    operator, django_capture_on_commit_callbacks
) -> None:
    job = failed_job()
    half_done(job)

    with django_capture_on_commit_callbacks(execute=False):
        resumed = resume(operator, job.job_id).json()
    listed = operator.get("/reconciliation/jobs").json()["jobs"]

    assert listed == [resumed]


def test_a_failed_job_without_segments_is_resumed_from_the_start(
    operator, django_capture_on_commit_callbacks
) -> None:
    job = failed_job(validation_strategy="SAMPLE")

    with django_capture_on_commit_callbacks(execute=False):
        response = resume(operator, job.job_id)

    assert response.status_code == 202, response.json()
    assert response.json()["status"] == "RUNNING"
    assert (response.json()["segments_total"], response.json()["segments_done"]) == (0, 0)


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.RUNNING])
def test_a_job_that_did_not_fail_is_a_409_saying_so_and_nothing_changes(
    operator, status, django_capture_on_commit_callbacks
) -> None:
    job = JobFactory(table_name="users", status=status)
    done = segment(job, SegmentKind.COMPARE, 0, SegmentStatus.DONE)
    running = segment(job, SegmentKind.COMPARE, 1, SegmentStatus.RUNNING)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = resume(operator, job.job_id)

    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "job_not_resumable"
    assert body["detail"]  # a sentence for a human
    assert (body["job_id"], body["status"]) == (str(job.job_id), status)
    assert body["fields"] == {}
    job.refresh_from_db()
    assert job.status == status
    assert JobSegment.objects.get(pk=done.pk).status == SegmentStatus.DONE
    assert JobSegment.objects.get(pk=running.pk).status == SegmentStatus.RUNNING
    assert queued == []


def test_a_table_with_a_running_job_is_a_409_naming_that_job(
    operator, django_capture_on_commit_callbacks
) -> None:
    job = failed_job("orders", started_at=timezone.now() - dt.timedelta(hours=1))
    pending = segment(job, SegmentKind.COMPARE, 0, SegmentStatus.QUEUED)
    busy = JobFactory(table_name="orders", status=JobStatus.RUNNING)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = resume(operator, job.job_id)

    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "job_already_running"
    assert (body["job_id"], body["table_name"]) == (str(busy.job_id), "orders")
    assert str(busy.job_id) in body["detail"]
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED  # left as it was
    assert JobSegment.objects.get(pk=pending.pk).status == SegmentStatus.QUEUED
    assert queued == []


def test_an_unknown_job_is_a_json_404(operator) -> None:
    response = resume(operator, uuid.uuid4())

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_a_job_id_that_is_not_a_uuid_is_a_json_404(operator) -> None:
    response = resume(operator, "not-a-uuid")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_resuming_needs_credentials(client) -> None:
    job = failed_job()

    response = client.post(f"/reconciliation/jobs/{job.job_id}/resume")

    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
    assert ReconciliationJob.objects.get(pk=job.pk).status == JobStatus.FAILED


def test_resuming_needs_the_permission_to_trigger_jobs(reader, api_client) -> None:
    job = failed_job()

    refused = resume(reader, job.job_id)  # may view jobs, not start them

    assert refused.status_code == 403
    assert refused.json()["error"] == "permission_denied"
    assert ReconciliationJob.objects.get(pk=job.pk).status == JobStatus.FAILED


def test_the_trigger_permission_alone_is_enough_as_for_the_trigger(
    api_client, django_capture_on_commit_callbacks
) -> None:
    job = failed_job()
    trigger_only = api_client(TRIGGER_JOBS)

    with django_capture_on_commit_callbacks(execute=False):
        response = resume(trigger_only, job.job_id)

    assert response.status_code == 202, response.json()


def test_only_post_is_allowed(operator) -> None:
    job = failed_job()

    response = operator.get(f"/reconciliation/jobs/{job.job_id}/resume")

    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_resume_shares_the_triggers_request_budget(
    api_client, settings, django_capture_on_commit_callbacks
) -> None:
    generous = "1000000/minute"
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            "anon": generous,
            "user": generous,
            "mutations": generous,
            "trigger": "1/minute",
        },
    }
    client = api_client(VIEW_JOBS, TRIGGER_JOBS)  # a fresh user: nothing counted yet
    job = failed_job("orders")

    with django_capture_on_commit_callbacks(execute=False):
        triggered = client.post(
            "/reconciliation/trigger",
            {"tables": ["users"], "validation_strategy": "ROW_COUNT"},
            format="json",
        )
        resumed = resume(client, job.job_id)

    assert triggered.status_code == 202
    assert resumed.status_code == 429
    assert resumed.json()["error"] == "throttled"
    assert ReconciliationJob.objects.get(pk=job.pk).status == JobStatus.FAILED


def test_the_schema_documents_resume_with_its_answers(client) -> None:
    import json

    schema = json.loads(client.get("/api/schema/?format=json").content)

    operation = schema["paths"]["/reconciliation/jobs/{job_id}/resume"]["post"]
    assert operation["operationId"] == "resume_job"
    assert {"202", "401", "403", "404", "409"} <= set(operation["responses"])
    accepted = operation["responses"]["202"]["content"]["application/json"]["schema"]
    assert accepted["$ref"].endswith("/Job")
    conflict = operation["responses"]["409"]["content"]["application/json"]["schema"]
    conflict_name = conflict["$ref"].rsplit("/", 1)[-1]
    assert {"error", "detail", "fields", "job_id", "status"} <= set(
        schema["components"]["schemas"][conflict_name]["properties"]
    )
    job = schema["components"]["schemas"]["Job"]["properties"]
    assert job["segments_total"]["type"] == job["segments_done"]["type"] == "integer"
