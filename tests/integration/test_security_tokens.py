"""API tokens (django-rest-knox): stored as digests, expiring, revocable, Bearer only."""

from __future__ import annotations

import datetime as dt
import importlib
import re

import pytest
from django.apps import apps as global_apps
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from cdcrecon.api.tokens import issue_token
from tests.factories import JobFactory, UserFactory

pytestmark = pytest.mark.django_db


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def row_texts(table: str) -> list[str]:
    """Every column of every row of ``table``, as text: what a database dump would show."""
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT t::text FROM "{table}" t')
        return [row[0] for row in cursor.fetchall()]


def test_a_tokens_database_row_does_not_contain_the_token() -> None:
    user = UserFactory(is_superuser=True)
    _, token = issue_token(user)

    rows = row_texts(AuthToken._meta.db_table)

    assert len(rows) == 1
    assert token not in rows[0]
    assert token.upper() not in rows[0].upper()
    assert bearer(token).get("/reconciliation/jobs").status_code == 200


def test_a_copied_digest_cannot_call_the_api() -> None:
    user = UserFactory(is_superuser=True)
    instance, _ = issue_token(user)

    for stolen in (instance.digest, instance.token_key, instance.digest[:64]):
        response = bearer(stolen).get("/reconciliation/jobs")
        assert response.status_code == 401, stolen


def test_an_expired_token_is_a_401_json_error_and_is_removed() -> None:
    user = UserFactory(is_superuser=True)
    instance, token = issue_token(user, dt.timedelta(hours=1))
    AuthToken.objects.filter(pk=instance.pk).update(expiry=timezone.now() - dt.timedelta(seconds=1))

    response = bearer(token).get("/reconciliation/jobs")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    body = response.json()
    assert set(body) == {"error", "detail", "fields"}
    assert body["error"] == "authentication_failed"
    assert "expired" in body["detail"]
    assert not AuthToken.objects.filter(pk=instance.pk).exists()


def test_tokens_expire_after_api_token_ttl_hours_by_default() -> None:
    user = UserFactory()
    before = timezone.now()

    instance, _ = issue_token(user)

    assert instance.expiry is not None
    lifetime = instance.expiry - before
    assert dt.timedelta(hours=719) < lifetime <= dt.timedelta(hours=720, seconds=5)


def test_a_zero_ttl_makes_a_token_that_never_expires(capsys) -> None:
    user = UserFactory(username="robot", is_superuser=True)

    call_command("create_api_token", "robot", "--ttl-hours", "0")

    out = capsys.readouterr().out
    assert "never expires" in out
    token = re.search(r"\b([0-9a-f]{64})\b", out).group(1)
    assert AuthToken.objects.get(user=user).expiry is None
    assert bearer(token).get("/reconciliation/jobs").status_code == 200


@pytest.mark.parametrize("scheme", ["Token", "Basic", "token"])
def test_another_scheme_is_a_401_that_names_the_bearer_scheme(scheme) -> None:
    _, token = issue_token(UserFactory(is_superuser=True))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {token}")

    response = client.get("/reconciliation/jobs")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    body = response.json()
    assert body["error"] == "authentication_failed"
    assert "Authorization: Bearer <token>" in body["detail"]


def test_ensure_admin_prints_a_working_token_every_time(capsys, monkeypatch) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "boss")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-password")
    JobFactory()

    tokens = []
    for _ in range(2):
        call_command("ensure_admin")
        tokens.append(re.search(r"\b([0-9a-f]{64})\b", capsys.readouterr().out).group(1))

    assert tokens[0] != tokens[1]
    for token in tokens:
        response = bearer(token).get("/reconciliation/jobs")
        assert response.status_code == 200
        assert response.json()["total"] == 1


def test_tokens_are_listed_and_revoked_in_the_admin(client) -> None:
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    instance, token = issue_token(UserFactory(username="ci-bot", is_superuser=True))
    client.force_login(admin)

    listing = client.get("/admin/knox/authtoken/")
    assert listing.status_code == 200
    assert "ci-bot" in listing.content.decode()
    assert token not in listing.content.decode()

    revoked = client.post(
        "/admin/knox/authtoken/",
        {"action": "delete_selected", "_selected_action": [instance.pk], "post": "yes"},
    )
    assert revoked.status_code == 302
    assert bearer(token).get("/reconciliation/jobs").status_code == 401


def test_the_migration_turns_clear_tokens_into_digests_that_keep_working() -> None:
    """An existing DRF authtoken row becomes a knox token with the same value; the clear
    table is dropped (DDL in PostgreSQL is transactional: the test's rollback undoes it)."""
    user = UserFactory(is_superuser=True)
    old_key = "0123456789abcdef0123456789abcdef01234567"  # DRF's 40 hex characters
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, "
            "created timestamptz NOT NULL, user_id integer NOT NULL)"
        )
        cursor.execute("INSERT INTO authtoken_token VALUES (%s, now(), %s)", [old_key, user.pk])
    migration = importlib.import_module("reconciliation.migrations.0003_hashed_tokens")

    with connection.schema_editor() as editor:
        migration.hash_clear_tokens(global_apps, editor)

    assert "authtoken_token" not in connection.introspection.table_names()
    assert all(old_key not in text for text in row_texts(AuthToken._meta.db_table))
    assert AuthToken.objects.get(user=user).expiry is not None
    assert bearer(old_key).get("/reconciliation/jobs").status_code == 200


def test_a_token_issued_in_the_admin_is_shown_once_and_expires_by_default(client) -> None:
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    robot = UserFactory(username="robot", is_superuser=True)
    client.force_login(admin)
    form = client.get("/admin/knox/authtoken/add/")
    assert form.status_code == 200
    initial = form.context["adminform"].form["expiry"].value()  # API_TOKEN_TTL_HOURS from now
    if timezone.is_naive(initial):
        initial = timezone.make_aware(initial)
    assert initial - timezone.now() > dt.timedelta(hours=719)

    response = client.post(
        "/admin/knox/authtoken/add/",
        {"user": robot.pk, "expiry": initial.strftime("%Y-%m-%d %H:%M:%S")},
        follow=True,
    )

    shown = re.search(r"API token for robot: ([0-9a-f]{64})", response.content.decode())
    assert shown, response.content.decode()[:2000]
    assert bearer(shown.group(1)).get("/reconciliation/jobs").status_code == 200
    assert shown.group(1) not in client.get("/admin/knox/authtoken/").content.decode()
    assert AuthToken.objects.get(user=robot).expiry > timezone.now() + dt.timedelta(hours=719)
