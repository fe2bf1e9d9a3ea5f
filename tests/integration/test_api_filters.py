"""Every list endpoint says no: unknown, repeated or malformed query parameters are 400s
that name the accepted parameters and values; nothing is silently ignored."""

from __future__ import annotations

import datetime as dt

import pytest

from gdpr.models import AuditAction, AuditLogEntry
from reconciliation.choices import JobStatus, ResolutionStatus
from tests.factories import JobFactory, MismatchFactory

pytestmark = pytest.mark.django_db

LISTS = ["/reconciliation/jobs", "/reconciliation/mismatches", "/records/audit"]
T0 = dt.datetime(2025, 11, 25, 10, 0, tzinfo=dt.UTC)


def assert_400(response, parameter: str) -> str:
    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"error", "detail", "fields"}
    assert body["error"] == "invalid_request"
    assert parameter in body["fields"], body
    return " ".join(body["fields"][parameter])


@pytest.mark.parametrize("path", LISTS)
def test_an_unknown_parameter_is_a_400_listing_the_accepted_ones(superuser_api, path) -> None:
    JobFactory(table_name="users")

    message = assert_400(superuser_api.get(path, {"tabel": "users"}), "tabel")

    assert "Did you mean 'table'?" in message
    for accepted in ("table", "limit", "offset"):
        assert accepted in message


@pytest.mark.parametrize("path", LISTS)
def test_a_repeated_parameter_is_a_400(superuser_api, path) -> None:
    response = superuser_api.get(f"{path}?table=users&table=orders")

    assert "more than once" in assert_400(response, "table")


@pytest.mark.parametrize(
    ("path", "parameter", "valid"),
    [
        ("/reconciliation/jobs", "status", ["RUNNING", "COMPLETED", "FAILED"]),
        (
            "/reconciliation/mismatches",
            "mismatch_type",
            ["MISSING_IN_POSTGRES", "MISSING_IN_CASSANDRA", "DATA_MISMATCH"],
        ),
        (
            "/reconciliation/mismatches",
            "resolution_status",
            ["PENDING", "MANUAL_RESOLVED", "AUTO_RESOLVED", "IGNORED"],
        ),
        ("/records/audit", "action", [a.value for a in AuditAction]),
    ],
)
def test_an_unknown_enum_value_lists_the_valid_values(
    superuser_api, path, parameter, valid
) -> None:
    message = assert_400(superuser_api.get(path, {parameter: "done"}), parameter)

    assert "'done'" in message
    for value in valid:
        assert value in message


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/reconciliation/jobs", "from_date"),
        ("/reconciliation/jobs", "to_date"),
        ("/reconciliation/mismatches", "detected_after"),
        ("/reconciliation/mismatches", "detected_before"),
        ("/reconciliation/mismatches", "last_seen_after"),
        ("/reconciliation/mismatches", "last_seen_before"),
        ("/records/audit", "from_date"),
    ],
)
@pytest.mark.parametrize("value", ["notadate", "2025-13-01", "2025-02-30T10:00:00Z", "yesterday"])
def test_a_malformed_date_is_a_400(superuser_api, path, parameter, value) -> None:
    message = assert_400(superuser_api.get(path, {parameter: value}), parameter)

    assert "ISO 8601" in message


@pytest.mark.parametrize(
    ("path", "start", "end"),
    [
        ("/reconciliation/jobs", "from_date", "to_date"),
        ("/reconciliation/mismatches", "detected_after", "detected_before"),
        ("/reconciliation/mismatches", "last_seen_after", "last_seen_before"),
        ("/records/audit", "from_date", "to_date"),
    ],
)
def test_a_reversed_date_range_is_a_400(superuser_api, path, start, end) -> None:
    response = superuser_api.get(path, {start: "2025-11-26", end: "2025-11-25"})

    assert end in assert_400(response, start)


def test_a_malformed_job_id_is_a_400(superuser_api) -> None:
    response = superuser_api.get("/reconciliation/mismatches", {"job_id": "not-a-uuid"})

    assert "UUID" in assert_400(response, "job_id")


@pytest.mark.parametrize("path", ["/reconciliation/jobs", "/reconciliation/mismatches"])
def test_an_unknown_table_is_a_400_listing_the_known_tables(superuser_api, path) -> None:
    MismatchFactory(job=JobFactory(table_name="users"))

    message = assert_400(superuser_api.get(path, {"table": "user"}), "table")

    assert "'user'" in message
    assert "users" in message


@pytest.mark.parametrize("path", LISTS)
def test_a_malformed_table_name_is_a_400(superuser_api, path) -> None:
    assert_400(superuser_api.get(path, {"table": "users; DROP TABLE x"}), "table")


def test_a_table_known_only_from_history_is_still_filterable(superuser_api) -> None:
    old = MismatchFactory(job=JobFactory(table_name="retired_table"))

    body = superuser_api.get("/reconciliation/mismatches", {"table": "retired_table"}).json()

    assert [m["mismatch_id"] for m in body["mismatches"]] == [str(old.mismatch_id)]


def test_paging_and_format_parameters_are_accepted(superuser_api) -> None:
    JobFactory(table_name="users")

    response = superuser_api.get("/reconciliation/jobs?limit=5&offset=0&format=json&table=users")

    assert response.status_code == 200
    assert response.json()["total"] == 1


def test_the_mismatch_list_filters_by_detection_date(superuser_api) -> None:
    old = MismatchFactory(detected_at=T0 - dt.timedelta(days=2))
    new = MismatchFactory(detected_at=T0)

    def ids(**params: str) -> set[str]:
        response = superuser_api.get("/reconciliation/mismatches", params)
        assert response.status_code == 200, response.content
        return {m["mismatch_id"] for m in response.json()["mismatches"]}

    assert ids(detected_after="2025-11-24") == {str(new.mismatch_id)}
    assert ids(detected_before="2025-11-23") == {str(old.mismatch_id)}
    # A date alone as the upper bound takes in that whole day.
    assert ids(detected_after="2025-11-25", detected_before="2025-11-25") == {str(new.mismatch_id)}
    assert ids(last_seen_after="2025-11-25T09:00:00Z") == {str(new.mismatch_id)}
    assert ids(last_seen_before="2025-11-24T00:00:00+01:00") == {str(old.mismatch_id)}


def test_the_filters_combine_with_the_date_filters(superuser_api) -> None:
    wanted = MismatchFactory(detected_at=T0, job=JobFactory(table_name="users"))
    MismatchFactory(detected_at=T0, job=wanted.job, resolution_status=ResolutionStatus.IGNORED)
    MismatchFactory(detected_at=T0 - dt.timedelta(days=5), job=wanted.job)

    body = superuser_api.get(
        "/reconciliation/mismatches",
        {"table": "users", "resolution_status": "PENDING", "detected_after": "2025-11-24"},
    ).json()

    assert body["total"] == 1
    assert body["mismatches"][0]["mismatch_id"] == str(wanted.mismatch_id)


def test_a_running_job_shows_its_progress_in_percent(superuser_api) -> None:
    running = JobFactory(status=JobStatus.RUNNING, progress=0.425)
    done = JobFactory(progress=1.0)

    listed = {j["job_id"]: j for j in superuser_api.get("/reconciliation/jobs").json()["jobs"]}
    detail = superuser_api.get(f"/reconciliation/jobs/{running.job_id}").json()

    assert listed[str(running.job_id)]["progress"] == 42.5
    assert detail["progress"] == 42.5
    assert detail["status"] == "RUNNING"
    assert listed[str(done.job_id)]["progress"] == 100.0


def test_the_audit_list_still_filters_when_the_parameters_are_right(superuser_api) -> None:
    now = dt.datetime.now(dt.UTC)
    entry = AuditLogEntry.objects.create(
        action=AuditAction.ERASURE,
        requester="alice",
        reason="ticket 1",
        keyspace="warehouse",
        table="users",
        primary_key="user-1",
        requested_at=now,
    )

    body = superuser_api.get("/records/audit", {"table": "users", "action": "ERASURE"}).json()

    assert [e["id"] for e in body["entries"]] == [entry.pk]


@pytest.mark.parametrize("path", LISTS)
def test_percent_signs_and_odd_characters_in_parameters_are_a_400_not_a_500(
    superuser_api, path
) -> None:
    response = superuser_api.get(
        f"{path}?%01%25s%25%28x%29=1&=&table=%F1%AE%B9%8F%25d%28N&status=%25s"
    )

    assert response.status_code == 400
    fields = response.json()["fields"]
    assert "\x01%s%(x)" in fields
    assert any("%(x)" in message for message in fields["\x01%s%(x)"])
