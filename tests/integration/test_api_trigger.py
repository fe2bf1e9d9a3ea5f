"""POST /reconciliation/trigger: all or nothing, 202 with RUNNING job ids, 400 and 409."""

from __future__ import annotations

import pytest

from reconciliation.choices import JobStatus, JobType
from reconciliation.models import ReconciliationJob
from tests.factories import JobFactory, TableMappingFactory
from tests.integration.conftest import TRIGGER_JOBS as TRIGGER_JOBS_PERMISSION

pytestmark = pytest.mark.django_db


def trigger(client, **body):
    return client.post("/reconciliation/trigger", body, format="json")


def test_it_creates_one_running_manual_job_per_table_and_queues_each(
    operator, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = trigger(operator, tables=["users", "orders"], validation_strategy="ROW_COUNT")

    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"job_ids", "status"}
    assert body["status"] == "RUNNING"
    jobs = {str(j.job_id): j for j in ReconciliationJob.objects.all()}
    assert set(body["job_ids"]) == set(jobs)
    assert sorted(j.table_name for j in jobs.values()) == ["orders", "users"]
    for job in jobs.values():
        assert job.status == JobStatus.RUNNING
        assert job.job_type == JobType.MANUAL
        assert job.validation_strategy == "ROW_COUNT"
        assert job.requested_by == operator.user
    assert len(queued) == 2  # one task per job, sent after the commit


def test_a_post_without_a_trailing_slash_is_served_and_one_with_it_is_a_json_404(
    operator,
) -> None:
    with_slash = operator.post(
        "/reconciliation/trigger/",
        {"tables": ["users"], "validation_strategy": "ROW_COUNT"},
        format="json",
    )

    assert with_slash.status_code == 404  # never a redirect that would drop the body
    assert with_slash.json()["error"] == "not_found"
    assert not ReconciliationJob.objects.exists()


def test_it_rejects_unknown_tables_by_name_and_creates_no_job_at_all(operator) -> None:
    response = trigger(
        operator, tables=["users", "payments", "refunds"], validation_strategy="ROW_COUNT"
    )

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "unknown_table"
    assert "payments" in body["detail"] and "refunds" in body["detail"]
    assert "payments" in body["fields"]["tables"][0]
    assert not ReconciliationJob.objects.exists()


def test_a_table_with_a_running_job_is_a_409_naming_that_job_and_nothing_is_created(
    operator, django_capture_on_commit_callbacks
) -> None:
    running = JobFactory(table_name="orders", status=JobStatus.RUNNING)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = trigger(operator, tables=["users", "orders"], validation_strategy="CHECKSUM")

    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "job_already_running"
    assert body["job_id"] == str(running.job_id)
    assert body["table_name"] == "orders"
    assert str(running.job_id) in body["detail"]
    assert list(ReconciliationJob.objects.values_list("job_id", flat=True)) == [running.job_id]
    assert queued == []


def test_an_admin_registered_table_can_be_triggered(
    operator, django_capture_on_commit_callbacks
) -> None:
    TableMappingFactory(name="invoices", enabled=False)  # not scheduled, still triggerable

    with django_capture_on_commit_callbacks(execute=False):
        response = trigger(operator, tables=["invoices"], validation_strategy="CHECKSUM")

    assert response.status_code == 202
    assert ReconciliationJob.objects.get().table_name == "invoices"


def test_a_timestamp_range_window_is_stored_on_the_job_in_utc(
    operator, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        response = trigger(
            operator,
            tables=["users"],
            validation_strategy="TIMESTAMP_RANGE",
            **{"from": "2025-11-25T10:00:00+01:00", "to": "2025-11-25T10:00:00Z"},
        )

    assert response.status_code == 202, response.json()
    job = ReconciliationJob.objects.get()
    assert job.parameters == {"from": "2025-11-25T09:00:00Z", "to": "2025-11-25T10:00:00Z"}


def test_a_sample_size_is_stored_for_sample_validation(
    operator, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        response = trigger(
            operator, tables=["users"], validation_strategy="SAMPLE", sample_size=250
        )

    assert response.status_code == 202
    assert ReconciliationJob.objects.get().parameters == {"sample_size": 250}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tables": ["users"], "validation_strategy": "FULL_SCAN"}, "validation_strategy"),
        ({"tables": [], "validation_strategy": "ROW_COUNT"}, "tables"),
        ({"tables": ["users", "users"], "validation_strategy": "ROW_COUNT"}, "tables"),
        ({"tables": "users", "validation_strategy": "ROW_COUNT"}, "tables"),
        ({"tables": ["no such table!"], "validation_strategy": "ROW_COUNT"}, "tables"),
        ({"validation_strategy": "ROW_COUNT"}, "tables"),
        ({"tables": ["users"]}, "validation_strategy"),
        (
            {"tables": ["users"], "validation_strategy": "ROW_COUNT", "sample_size": 10},
            "sample_size",
        ),
        (
            {"tables": ["users"], "validation_strategy": "SAMPLE", "sample_size": 0},
            "sample_size",
        ),
        (
            {"tables": ["users"], "validation_strategy": "SAMPLE", "sample_size": "many"},
            "sample_size",
        ),
        (
            {"tables": ["users"], "validation_strategy": "ROW_COUNT", "from": "2025-11-25T10:00Z"},
            "from",
        ),
        (
            {
                "tables": ["users"],
                "validation_strategy": "TIMESTAMP_RANGE",
                "from": "2025-11-25T10:00:00",
            },
            "from",
        ),
        (
            {"tables": ["users"], "validation_strategy": "TIMESTAMP_RANGE", "to": "yesterday"},
            "to",
        ),
        (
            {
                "tables": ["users"],
                "validation_strategy": "TIMESTAMP_RANGE",
                "from": "2025-11-25T11:00:00Z",
                "to": "2025-11-25T10:00:00Z",
            },
            "from",
        ),
    ],
)
def test_a_bad_request_is_a_400_naming_the_field_and_creates_nothing(operator, body, field) -> None:
    response = operator.post("/reconciliation/trigger", body, format="json")

    assert response.status_code == 400, response.json()
    assert response.json()["error"] == "invalid_request"
    assert field in response.json()["fields"], response.json()
    assert not ReconciliationJob.objects.exists()


def test_triggering_needs_the_add_permission(reader) -> None:
    response = trigger(reader, tables=["users"], validation_strategy="ROW_COUNT")

    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied"
    assert not ReconciliationJob.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_job_the_broker_cannot_take_is_failed_at_once_not_left_running(api_client) -> None:
    from cdcrecon.celery import app
    from tests.conftest import use_broker

    client = api_client(TRIGGER_JOBS_PERMISSION)
    before = (app.conf.broker_url, app.conf.task_default_queue)
    use_broker("redis://127.0.0.1:1/0", "nowhere")  # nothing listens on port 1
    try:
        response = trigger(client, tables=["users"], validation_strategy="ROW_COUNT")
    finally:
        use_broker(*before)

    assert response.status_code == 202
    job = ReconciliationJob.objects.get()
    assert job.status == JobStatus.FAILED
    assert "Could not queue the job" in job.error_message
