"""Brute-force protection (django-axes): AXES_FAILURE_LIMIT (5) failures lock that username
from that IP, for the admin login and for API tokens alike; the lock shows in the admin and
is lifted there."""

from __future__ import annotations

from typing import Any

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from cdcrecon.api.tokens import issue_token
from cdcrecon.security import API_TOKEN_USERNAME
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "the-right-password"


@pytest.fixture
def ops(django_user_model: Any) -> Any:
    return django_user_model.objects.create_superuser("ops", "ops@example.com", PASSWORD)


def log_in(username: str, password: str, ip: str = "192.0.2.10") -> tuple[Client, Any]:
    client = Client(REMOTE_ADDR=ip)
    response = client.post(
        "/admin/login/?next=/admin/", {"username": username, "password": password}
    )
    return client, response


def logged_in(client: Client) -> bool:
    return client.get("/admin/").status_code == 200


def test_five_bad_admin_logins_lock_the_sixth_even_with_the_right_password(ops) -> None:
    assert settings.AXES_FAILURE_LIMIT == 5
    for _ in range(4):
        _, response = log_in("ops", "wrong")
        assert response.status_code == 200  # the form again, with its error
    _, fifth = log_in("ops", "wrong")
    assert fifth.status_code == 429

    client, sixth = log_in("ops", PASSWORD)

    assert sixth.status_code == 429
    assert "locked" in sixth.content.decode().lower()
    assert not logged_in(client)


def test_the_lock_is_for_that_username_from_that_ip_only(ops, django_user_model) -> None:
    django_user_model.objects.create_superuser("dev", "dev@example.com", PASSWORD)
    for _ in range(5):
        log_in("ops", "wrong", ip="192.0.2.10")

    other_user, _ = log_in("dev", PASSWORD, ip="192.0.2.10")
    other_ip, _ = log_in("ops", PASSWORD, ip="192.0.2.99")

    assert logged_in(other_user)
    assert logged_in(other_ip)


def test_the_lock_is_visible_and_lifted_in_the_admin(ops, django_user_model) -> None:
    for _ in range(5):
        log_in("ops", "wrong")
    attempt = AccessAttempt.objects.get(username="ops")
    assert attempt.failures_since_start == 5
    root = django_user_model.objects.create_superuser("root", "root@example.com", "x-y-z-w")
    admin = Client()
    admin.force_login(root)

    listing = admin.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200
    assert "192.0.2.10" in listing.content.decode()

    lifted = admin.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": [attempt.pk], "post": "yes"},
    )
    assert lifted.status_code == 302
    client, _ = log_in("ops", PASSWORD)
    assert logged_in(client)


def test_failed_api_tokens_count_and_lock_that_ip_out_of_the_api() -> None:
    _, valid = issue_token(UserFactory(is_superuser=True))
    client = APIClient(REMOTE_ADDR="198.51.100.4")

    client.credentials(HTTP_AUTHORIZATION="Bearer " + "0" * 64)
    codes = [client.get("/reconciliation/jobs").status_code for _ in range(5)]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {valid}")
    locked = client.get("/reconciliation/jobs")

    assert codes == [401, 401, 401, 401, 429]
    assert locked.status_code == 429
    assert locked.json()["error"] == "locked_out"
    assert set(locked.json()) == {"error", "detail", "fields"}
    assert int(locked["Retry-After"]) == settings.AXES_COOLOFF_TIME.total_seconds()
    attempt = AccessAttempt.objects.get(ip_address="198.51.100.4")
    assert attempt.username == API_TOKEN_USERNAME  # shown so in the admin
    # another client address is not affected
    elsewhere = APIClient(REMOTE_ADDR="198.51.100.5")
    elsewhere.credentials(HTTP_AUTHORIZATION=f"Bearer {valid}")
    assert elsewhere.get("/reconciliation/jobs").status_code == 200

    call_command("axes_reset_ip", "198.51.100.4")  # or delete the attempt in the admin

    assert client.get("/reconciliation/jobs").status_code == 200


def test_a_successful_login_clears_earlier_failures(ops) -> None:
    for _ in range(4):
        log_in("ops", "wrong")
    client, _ = log_in("ops", PASSWORD)
    assert logged_in(client)

    for _ in range(4):
        log_in("ops", "wrong")
    client, _ = log_in("ops", PASSWORD)

    assert logged_in(client)


def test_a_login_without_a_request_still_works_and_locks_nothing(ops) -> None:
    client = Client()

    assert client.login(username="ops", password=PASSWORD)  # Django's test login: no request
    assert logged_in(client)
    assert not Client().login(username="ops", password="wrong")
    assert not AccessAttempt.objects.exists()


def test_a_valid_call_from_an_address_never_locked_costs_no_lockout_query() -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _, valid = issue_token(UserFactory(is_superuser=True))
    client = APIClient(REMOTE_ADDR="203.0.113.77")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {valid}")

    with CaptureQueriesContext(connection) as queries:
        assert client.get("/reconciliation/jobs").status_code == 200

    assert not [q for q in queries.captured_queries if "axes_" in q["sql"]]
    assert len([q for q in queries.captured_queries if "knox_authtoken" in q["sql"]]) == 1
