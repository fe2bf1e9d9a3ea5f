"""Bad input is a JSON 4xx `{"error", "detail", "fields"}`, never a 500 or an HTML page."""

from __future__ import annotations

import uuid

import pytest

from tests.factories import JobFactory

pytestmark = pytest.mark.django_db


def assert_error(response, status: int, code: str, *fields: str) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert {"error", "detail", "fields"} <= set(body)
    assert body["error"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    assert set(fields) <= set(body["fields"]), body
    return body


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "DONE"}, "status"),
        ({"status": "running"}, "status"),
        ({"from_date": "yesterday"}, "from_date"),
        ({"from_date": "2025-02-30"}, "from_date"),
        ({"to_date": "2025-11-25T25:00:00Z"}, "to_date"),
        ({"from_date": "2025-11-26", "to_date": "2025-11-25"}, "from_date"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"offset": "-5"}, "offset"),
        ({"offset": "x"}, "offset"),
        ({"offset": "9" * 40}, "offset"),
    ],
)
def test_a_bad_job_query_parameter_is_a_400_naming_it(reader, params, field) -> None:
    assert_error(reader.get("/reconciliation/jobs", params), 400, "invalid_request", field)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"resolution_status": "DONE"}, "resolution_status"),
        ({"mismatch_type": "MISSING"}, "mismatch_type"),
        ({"job_id": "nope"}, "job_id"),
        ({"limit": "10001"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"offset": "-1"}, "offset"),
    ],
)
def test_a_bad_mismatch_query_parameter_is_a_400_naming_it(reader, params, field) -> None:
    assert_error(reader.get("/reconciliation/mismatches", params), 400, "invalid_request", field)


def test_a_malformed_uuid_in_the_path_is_a_404_like_an_unknown_one(reader) -> None:
    JobFactory()
    assert_error(reader.get("/reconciliation/jobs/not-a-uuid"), 404, "not_found")
    assert_error(reader.get(f"/reconciliation/jobs/{uuid.uuid4()}"), 404, "not_found")


def test_malformed_json_is_a_400(operator) -> None:
    response = operator.generic(
        "POST", "/reconciliation/trigger", '{"tables": [', content_type="application/json"
    )
    assert_error(response, 400, "parse_error")


def test_a_json_body_that_is_not_an_object_is_a_400(operator) -> None:
    response = operator.post("/reconciliation/trigger", ["users"], format="json")
    assert_error(response, 400, "invalid_request")


def test_a_body_that_is_not_json_is_a_415(operator) -> None:
    response = operator.post(
        "/reconciliation/trigger", {"tables": "users", "validation_strategy": "ROW_COUNT"}
    )  # multipart form
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("delete", "/reconciliation/jobs"),
        ("post", "/reconciliation/jobs"),
        ("put", f"/reconciliation/jobs/{uuid.uuid4()}"),
        ("get", "/reconciliation/trigger"),
        ("patch", "/reconciliation/mismatches"),
    ],
)
def test_a_wrong_method_is_a_405(superuser_api, method, path) -> None:
    assert_error(getattr(superuser_api, method)(path), 405, "method_not_allowed")


@pytest.mark.parametrize(
    "path", ["/reconciliation/nothing", "/reconciliation/jobs/", "/no/such/endpoint"]
)
def test_an_unknown_path_is_a_json_404(superuser_api, path) -> None:
    assert_error(superuser_api.get(path), 404, "not_found")


def test_a_409_keeps_the_error_shape(operator) -> None:
    JobFactory(table_name="users", status="RUNNING")
    response = operator.post(
        "/reconciliation/trigger",
        {"tables": ["users"], "validation_strategy": "ROW_COUNT"},
        format="json",
    )
    assert_error(response, 409, "job_already_running")


@pytest.mark.parametrize(
    "value", ["0342-07-31T04:19:19+19:54", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]
)
def test_odd_but_parseable_dates_never_cause_a_500(reader, value) -> None:
    response = reader.get("/reconciliation/jobs", {"from_date": value})

    assert response.status_code in (200, 400), response.content


# --- errors Django answers before (or instead of) a DRF view: JSON too (issue 12) -------------


def test_a_body_over_the_upload_limit_is_a_json_413(operator, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = '{"tables": ["users"], "validation_strategy": "ROW_COUNT", "pad": "' + "x" * 5000 + '"}'

    response = operator.generic(
        "POST", "/reconciliation/trigger", body, content_type="application/json"
    )

    assert_error(response, 413, "payload_too_large")


def test_a_3_mb_body_at_the_default_limit_is_a_json_413(operator) -> None:
    body = '{"tables": ["' + "u" * 3_000_000 + '"]}'

    response = operator.generic(
        "POST", "/reconciliation/trigger", body, content_type="application/json"
    )

    assert_error(response, 413, "payload_too_large")


def test_a_disallowed_host_is_a_json_400(reader) -> None:
    response = reader.get("/reconciliation/jobs", HTTP_HOST="evil.example.com")

    assert_error(response, 400, "disallowed_host")


def test_a_malformed_host_header_is_a_json_400(reader) -> None:
    response = reader.get("/reconciliation/jobs", HTTP_HOST="bad host\x00name")

    assert_error(response, 400, "disallowed_host")


def test_a_session_call_without_its_csrf_token_is_a_json_403(db) -> None:
    from django.test import Client

    from tests.factories import UserFactory

    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(is_superuser=True, is_staff=True))

    response = client.post(
        "/reconciliation/trigger",
        {"tables": ["users"], "validation_strategy": "ROW_COUNT"},
        content_type="application/json",
    )

    assert_error(response, 403, "permission_denied")
    assert "CSRF" in response.json()["detail"]


def test_csrf_failures_outside_drf_are_json_too(db) -> None:
    from django.test import Client

    response = Client(enforce_csrf_checks=True).post("/readyz", {})

    assert response.status_code in (403, 405)
    assert response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_a_wrong_method_on_the_health_endpoints_is_a_json_405(client, path) -> None:
    body = assert_error(client.post(path), 405, "method_not_allowed")

    assert "GET" in body["detail"]


def test_the_admin_keeps_its_html_pages(admin_client) -> None:
    response = admin_client.get("/admin/reconciliation/no-such-model/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_an_unexpected_error_is_a_json_500(superuser_api, monkeypatch) -> None:
    from reconciliation.api import views

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(views.ReconciliationJobViewSet, "list", explode)
    superuser_api.raise_request_exception = False

    assert_error(superuser_api.get("/reconciliation/jobs"), 500, "server_error")
