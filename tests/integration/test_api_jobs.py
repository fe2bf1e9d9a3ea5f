"""GET /reconciliation/jobs and /reconciliation/jobs/{job_id}: the guide's shapes and filters."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from reconciliation.choices import JobStatus, JobType, ValidationStrategy
from tests.factories import JobFactory, MismatchFactory
from tests.guide import JOB_EXTRA_FIELDS, JOB_FIELDS

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2025, 11, 25, 10, 0, tzinfo=dt.UTC)


def test_it_lists_jobs_in_the_guides_envelope_with_the_guides_fields_and_progress(reader) -> None:
    job = JobFactory(table_name="users", started_at=T0)

    response = reader.get("/reconciliation/jobs")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"jobs", "total", "limit", "offset"}
    assert (body["total"], body["limit"], body["offset"]) == (1, 100, 0)
    assert body["jobs"] == [
        {
            "job_id": str(job.job_id),
            "table_name": "users",
            "job_type": "HOURLY_SCHEDULED",
            "validation_strategy": "ROW_COUNT",
            "started_at": "2025-11-25T10:00:00Z",
            "completed_at": "2025-11-25T10:00:45Z",
            "status": "COMPLETED",
            "cassandra_row_count": 1000000,
            "postgres_row_count": 995000,
            "mismatch_count": 5000,
            "drift_percentage": 0.5,
            "alert_fired": False,
            "error_message": None,
            "phase": "DONE",
            "requested_by": "schedule",  # issue 14: who started it (no user: the schedule)
            "progress": 100.0,
            "segments_total": 0,  # issue 13: not split into segments (made by a factory)
            "segments_done": 0,
            "unreadable_value_count": 0,  # issue 10: values neither side could read
            # The ledger's additions (issue 11): what the run examined, and how.
            "keys_examined": None,
            "schema_warnings": [],
            "inconclusive": False,
            "window": None,
            # issue 18: nothing in flight; a job from before the re-check rules has none
            "transient_count": 0,  # issue 28: the re-check's count, as the admin shows it
            "in_flight_count": 0,
            "expired_count": 0,
            "recheck_rule": None,
            "lag_budget_seconds": None,
            "source_rows_per_second": None,  # made by a factory: never read Cassandra
            "repair_summary": None,  # no repair policy ran after it
            "repair_run": None,  # nor started
        }
    ]


def test_a_running_job_has_no_completion_time_and_no_counts_yet(reader) -> None:
    JobFactory(
        status=JobStatus.RUNNING,
        cassandra_row_count=None,
        postgres_row_count=None,
        drift_percentage=None,
        mismatch_count=0,
    )

    (job,) = reader.get("/reconciliation/jobs").json()["jobs"]

    assert job["status"] == "RUNNING"
    assert job["completed_at"] is None
    assert job["cassandra_row_count"] is None and job["drift_percentage"] is None


def test_jobs_come_newest_first(reader) -> None:
    old = JobFactory(started_at=T0)
    new = JobFactory(started_at=T0 + dt.timedelta(hours=1))

    ids = [j["job_id"] for j in reader.get("/reconciliation/jobs").json()["jobs"]]

    assert ids == [str(new.job_id), str(old.job_id)]


def test_it_filters_by_table_and_status(reader) -> None:
    wanted = JobFactory(table_name="users", status=JobStatus.FAILED)
    JobFactory(table_name="users", status=JobStatus.COMPLETED)
    JobFactory(table_name="orders", status=JobStatus.FAILED)

    body = reader.get("/reconciliation/jobs", {"table": "users", "status": "FAILED"}).json()

    assert body["total"] == 1
    assert [j["job_id"] for j in body["jobs"]] == [str(wanted.job_id)]


def test_it_filters_by_start_time_with_iso_8601_bounds(reader) -> None:
    before = JobFactory(started_at=T0 - dt.timedelta(days=1))
    inside = JobFactory(started_at=T0)
    late_same_day = JobFactory(started_at=T0 + dt.timedelta(hours=13))
    after = JobFactory(started_at=T0 + dt.timedelta(days=1))

    def ids(params: dict[str, str]) -> set[str]:
        response = reader.get("/reconciliation/jobs", params)
        assert response.status_code == 200, response.json()
        return {j["job_id"] for j in response.json()["jobs"]}

    assert ids({"from_date": "2025-11-25T10:00:00Z", "to_date": "2025-11-25T12:00:00Z"}) == {
        str(inside.job_id)
    }
    assert ids({"from_date": "2025-11-25T11:00:00+01:00"}) == {
        str(inside.job_id),
        str(late_same_day.job_id),
        str(after.job_id),
    }
    # A date alone: from the start of the day, to the end of the day.
    assert ids({"from_date": "2025-11-25", "to_date": "2025-11-25"}) == {
        str(inside.job_id),
        str(late_same_day.job_id),
    }
    assert ids({"to_date": "2025-11-24T23:59:59Z"}) == {str(before.job_id)}


def test_it_pages_with_limit_and_offset_and_counts_all_matches(reader) -> None:
    jobs = [JobFactory(started_at=T0 + dt.timedelta(minutes=i)) for i in range(5)]
    newest_first = [str(j.job_id) for j in reversed(jobs)]

    page = reader.get("/reconciliation/jobs", {"limit": 2, "offset": 2}).json()
    beyond = reader.get("/reconciliation/jobs", {"limit": 2, "offset": 10}).json()

    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 2)
    assert [j["job_id"] for j in page["jobs"]] == newest_first[2:4]
    assert beyond == {"jobs": [], "total": 5, "limit": 2, "offset": 10}


def test_the_limit_defaults_to_100_and_may_be_raised_to_1000_but_not_beyond(reader) -> None:
    JobFactory.create_batch(101)

    default = reader.get("/reconciliation/jobs").json()
    at_cap = reader.get("/reconciliation/jobs", {"limit": 1000}).json()
    over_cap = reader.get("/reconciliation/jobs", {"limit": 1001})

    assert (len(default["jobs"]), default["total"], default["limit"]) == (100, 101, 100)
    assert (len(at_cap["jobs"]), at_cap["limit"]) == (101, 1000)
    assert over_cap.status_code == 400
    assert over_cap.json()["error"] == "invalid_request"
    assert "limit" in over_cap.json()["fields"]


def test_job_details_have_the_list_fields_plus_the_guides_mismatch_fields(reader) -> None:
    job = JobFactory(table_name="users", validation_strategy=ValidationStrategy.CHECKSUM)
    mismatch = MismatchFactory(
        job=job,
        primary_key_value="user-123",
        mismatch_type="MISSING_IN_POSTGRES",
        postgres_checksum=None,
        postgres_data=None,
        detected_at=T0 + dt.timedelta(seconds=30),
    )
    MismatchFactory()  # another job's

    response = reader.get(f"/reconciliation/jobs/{job.job_id}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == JOB_FIELDS | JOB_EXTRA_FIELDS | {"mismatches"}
    assert body["job_id"] == str(job.job_id)
    assert body["validation_strategy"] == "CHECKSUM"
    assert body["drift_percentage"] == 0.5
    assert body["mismatches"] == [
        {
            "mismatch_id": str(mismatch.mismatch_id),
            "primary_key_value": "user-123",
            "mismatch_type": "MISSING_IN_POSTGRES",
            "cassandra_checksum": mismatch.cassandra_checksum,
            "postgres_checksum": None,
            "detected_at": "2025-11-25T10:00:30Z",
            "resolution_status": "PENDING",
            "first_seen_at": body["mismatches"][0]["first_seen_at"],
            "last_seen_at": body["mismatches"][0]["last_seen_at"],
            "times_seen": 1,
            "last_job_id": None,
            "reappeared_at": None,
            "source_write_time": None,
            "source_ttl_seconds": None,
            "recheck_after": None,
        }
    ]


def test_job_details_agree_with_the_list_entry(reader) -> None:
    job = JobFactory(job_type=JobType.MANUAL, alert_fired=True)

    (listed,) = reader.get("/reconciliation/jobs").json()["jobs"]
    detail = reader.get(f"/reconciliation/jobs/{job.job_id}").json()

    assert {k: detail[k] for k in JOB_FIELDS | JOB_EXTRA_FIELDS} == listed


def test_an_unknown_job_is_a_json_404(reader) -> None:
    response = reader.get(f"/reconciliation/jobs/{uuid.uuid4()}")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert set(response.json()) == {"error", "detail", "fields"}


def test_listing_jobs_needs_the_view_permission(api_client) -> None:
    nobody = api_client()

    response = nobody.get("/reconciliation/jobs")

    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied"


def test_job_details_are_exactly_what_the_cli_prints_with_json(reader) -> None:
    from reconciliation.presenters import job_detail

    job = JobFactory(completed_at=None, status=JobStatus.RUNNING)
    MismatchFactory.create_batch(3, job=job)

    body = reader.get(f"/reconciliation/jobs/{job.job_id}").json()

    assert body == job_detail(job)
