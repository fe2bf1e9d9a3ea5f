"""Who did what: every job names who started it (a user, or the schedule) in the API and the
admin; resolutions name their user."""

from __future__ import annotations

import pytest

from reconciliation.choices import JobType
from reconciliation.jobs.schedule import enqueue_scheduled_jobs
from reconciliation.models import ReconciliationJob
from tests.factories import JobFactory, MismatchFactory, UserFactory
from tests.integration.conftest import RESOLVE_MISMATCHES, TRIGGER_JOBS, VIEW_JOBS

pytestmark = pytest.mark.django_db


def test_a_job_started_through_the_api_names_its_user_in_the_api_and_the_admin(
    api_client, client, django_capture_on_commit_callbacks
) -> None:
    operator = api_client(VIEW_JOBS, TRIGGER_JOBS)
    with django_capture_on_commit_callbacks(execute=False):
        started = operator.post(
            "/reconciliation/trigger",
            {"tables": ["users"], "validation_strategy": "ROW_COUNT"},
            format="json",
        )
    assert started.status_code == 202
    job_id = started.json()["job_ids"][0]
    name = operator.user.username

    listed = operator.get("/reconciliation/jobs").json()["jobs"]
    detail = operator.get(f"/reconciliation/jobs/{job_id}").json()

    assert [(j["job_id"], j["requested_by"]) for j in listed] == [(job_id, name)]
    assert detail["requested_by"] == name
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    admin_list = client.get("/admin/reconciliation/reconciliationjob/").content.decode()
    admin_page = client.get(
        f"/admin/reconciliation/reconciliationjob/{job_id}/change/"
    ).content.decode()
    assert f'<td class="field-started_by">{name}</td>' in admin_list
    assert name in admin_page


def test_a_scheduled_job_says_it_was_started_by_the_schedule(reader, client) -> None:
    jobs = enqueue_scheduled_jobs()
    assert jobs and all(job.job_type == JobType.HOURLY_SCHEDULED for job in jobs)

    listed = reader.get("/reconciliation/jobs").json()["jobs"]

    assert {j["requested_by"] for j in listed} == {"schedule"}
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    admin_list = client.get("/admin/reconciliation/reconciliationjob/").content.decode()
    assert admin_list.count('<td class="field-started_by">schedule</td>') == len(jobs)


def test_a_manual_job_without_a_user_is_null_in_the_api(reader) -> None:
    JobFactory(job_type=JobType.MANUAL)  # e.g. manage.py reconcile

    (listed,) = reader.get("/reconciliation/jobs").json()["jobs"]

    assert listed["requested_by"] is None


def test_the_job_list_reads_the_users_without_a_query_per_job(
    api_client, django_assert_max_num_queries
) -> None:
    reader = api_client(VIEW_JOBS)
    for _ in range(5):
        JobFactory(job_type=JobType.MANUAL, requested_by=UserFactory())

    # token, axes, permissions, count, page: the same for 5 jobs as for 1000
    with django_assert_max_num_queries(8):
        listed = reader.get("/reconciliation/jobs").json()["jobs"]

    assert len({j["requested_by"] for j in listed}) == 5
    assert ReconciliationJob.objects.count() == 5


def test_a_resolution_through_the_api_names_its_user(api_client) -> None:
    resolver = api_client(VIEW_JOBS, RESOLVE_MISMATCHES)
    mismatch = MismatchFactory()

    response = resolver.post(
        f"/reconciliation/mismatches/{mismatch.mismatch_id}/resolve",
        {"resolution_status": "IGNORED", "resolution_notes": "known test row"},
        format="json",
    )

    assert response.status_code == 200
    mismatch.refresh_from_db()
    assert mismatch.resolved_by == resolver.user
