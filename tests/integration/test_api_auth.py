"""Bearer tokens: anonymous is 401 (with WWW-Authenticate), a missing permission is 403."""

from __future__ import annotations

import re
import uuid

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from tests.factories import JobFactory, UserFactory

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    ("get", "/reconciliation/jobs"),
    ("get", f"/reconciliation/jobs/{uuid.uuid4()}"),
    ("get", "/reconciliation/mismatches"),
    ("post", "/reconciliation/trigger"),
    ("post", f"/reconciliation/mismatches/{uuid.uuid4()}/resolve"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_an_anonymous_request_is_a_401_asking_for_a_bearer_token(method, path) -> None:
    response = getattr(APIClient(), method)(path, {}, format="json")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"] == "not_authenticated"
    assert set(response.json()) == {"error", "detail", "fields"}


@pytest.mark.parametrize("header", ["Bearer 0123456789abcdef", "Bearer", "Bearer a b"])
def test_a_bad_token_is_a_401(header) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get("/reconciliation/jobs")

    assert response.status_code == 401
    assert response.json()["error"] == "authentication_failed"


@pytest.mark.parametrize("command", ["create_api_token", "drf_create_token"])
def test_a_token_made_by_the_token_command_works(capsys, command) -> None:
    user = UserFactory(username="alice", is_superuser=True)
    JobFactory()

    call_command(command, user.username)
    token = re.search(r"\b([0-9a-f]{64})\b", capsys.readouterr().out).group(1)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    response = client.get("/reconciliation/jobs")

    assert response.status_code == 200
    assert response.json()["total"] == 1


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_a_user_without_permissions_gets_a_403(api_client, method, path) -> None:
    nobody = api_client()

    response = getattr(nobody, method)(path, {}, format="json")

    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied"


def test_view_permission_reads_but_cannot_trigger(reader) -> None:
    assert reader.get("/reconciliation/jobs").status_code == 200
    assert reader.get("/reconciliation/mismatches").status_code == 200
    denied = reader.post(
        "/reconciliation/trigger",
        {"tables": ["users"], "validation_strategy": "ROW_COUNT"},
        format="json",
    )
    assert denied.status_code == 403
    assert "reconciliation.add_reconciliationjob" in denied.json()["detail"]


def test_a_session_login_works_for_reading(client) -> None:
    user = UserFactory(is_superuser=True)
    client.force_login(user)

    assert client.get("/reconciliation/jobs").status_code == 200
