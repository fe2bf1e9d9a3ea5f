"""GDPR erasure refuses what it must: no token, no permission, an unregistered table, and
injection through the keyspace, the table or the key (bound as a value, nothing executed)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import psycopg
import pytest
from cassandra.cluster import Session
from rest_framework.test import APIClient

from gdpr.models import AuditLogEntry
from reconciliation.models import TableMapping
from tests.integration.erasure.support import (
    cassandra_ids,
    client_for,
    postgres_ids,
    url,
    user_with,
)

pytestmark = pytest.mark.django_db


# --- authentication, permission, routing ------------------------------------------------------


def test_an_anonymous_request_is_a_401(users: TableMapping, target: psycopg.Connection) -> None:
    response = client_for(None).delete(url(users, "user-alice") + "?reason=x")

    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
    assert "user-alice" in postgres_ids(target, users)


def test_a_bad_token_is_a_401(users: TableMapping, target: psycopg.Connection) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")

    response = client.delete(url(users, "user-alice") + "?reason=x")

    assert response.status_code == 401
    assert "user-alice" in postgres_ids(target, users)


def test_a_user_without_the_erase_permission_is_a_403(
    users: TableMapping, cassandra: Session, target: psycopg.Connection
) -> None:
    reader = user_with("reader", "view_reconciliationjob", "view_auditlogentry")

    response = client_for(reader).delete(url(users, "user-alice") + "?reason=x")

    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied"
    assert AuditLogEntry.objects.count() == 0
    assert "user-alice" in cassandra_ids(cassandra, users)
    assert "user-alice" in postgres_ids(target, users)


def test_an_unregistered_table_is_a_404_and_touches_nothing(
    api: APIClient, users: TableMapping, cassandra: Session, target: psycopg.Connection
) -> None:
    unregistered = TableMapping(
        cassandra_keyspace=users.cassandra_keyspace, cassandra_table="t_not_registered"
    )
    wrong_keyspace = url(users, "user-alice", keyspace="warehouse_elsewhere")

    for path in (url(unregistered, "user-alice"), wrong_keyspace):
        response = api.delete(path, {"reason": "ticket-47"}, format="json")
        assert response.status_code == 404, (path, response.content)
        assert response.json()["error"] == "not_found"
    assert AuditLogEntry.objects.count() == 0
    assert "user-alice" in cassandra_ids(cassandra, users)


def test_records_audit_is_not_read_as_an_erasure(api: APIClient, users: TableMapping) -> None:
    response = api.delete("/records/audit", {"reason": "x"}, format="json")

    assert response.status_code in (403, 405)
    assert AuditLogEntry.objects.count() == 0


INJECTIONS = [
    "users;DROP TABLE users",
    "users'; DROP TABLE users; --",
    'users"; DROP TABLE users; --',
    "..",
    "%2E%2E",
    "ússers",
    "users%2F..%2F..",
    "users%00",
    "users%3BDROP%20TABLE%20users",
]


@pytest.mark.parametrize("segment", INJECTIONS)
@pytest.mark.parametrize("position", ["keyspace", "table"])
def test_injection_in_the_keyspace_or_table_is_a_404_with_nothing_executed(
    api: APIClient,
    users: TableMapping,
    cassandra: Session,
    target: psycopg.Connection,
    segment: str,
    position: str,
) -> None:
    keyspace = segment if position == "keyspace" else users.cassandra_keyspace
    table = segment if position == "table" else users.cassandra_table
    # The segment is sent as written (already percent-encoded where it has a %).
    path = f"/records/{keyspace}/{table}/user-alice"

    response = api.delete(path, {"reason": "ticket-48"}, format="json")

    assert response.status_code == 404, (path, response.content)
    assert AuditLogEntry.objects.count() == 0
    assert cassandra_ids(cassandra, users) == {"user-alice", "user-bob", "user-carol"}
    assert postgres_ids(target, users) == {"user-alice", "user-bob", "user-carol"}


@pytest.mark.parametrize(
    "key",
    [
        "user-alice' OR '1'='1",
        "user-alice'; DROP TABLE users; --",
        'user-alice" OR ""="',
        "user-alice;DELETE FROM x",
        "../user-alice",
        "user-alice/../user-bob",
        "ûser-ålice ☃",
        "%",
        "*",
    ],
)
def test_injection_in_a_text_key_is_bound_as_a_value_and_matches_no_row(
    api: APIClient, users: TableMapping, cassandra: Session, target: psycopg.Connection, key: str
) -> None:
    response = api.delete(url(users, key), {"reason": "ticket-49"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["cassandra"]["status"] == "NOT_FOUND"
    assert response.json()["postgres"]["status"] == "NOT_FOUND"
    assert AuditLogEntry.objects.get().primary_key == key
    assert cassandra_ids(cassandra, users) == {"user-alice", "user-bob", "user-carol"}
    assert postgres_ids(target, users) == {"user-alice", "user-bob", "user-carol"}


def test_a_percent_encoded_slash_in_a_key_is_part_of_the_key(
    api: APIClient, users: TableMapping, cassandra: Session, target: psycopg.Connection
) -> None:
    cassandra.execute(f"INSERT INTO {users.cassandra_table} (id) VALUES ('team/dave')")
    target.execute(f"INSERT INTO public.{users.postgres_table} (id) VALUES ('team/dave')")

    response = api.delete(url(users, "team/dave"), {"reason": "ticket-52"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["postgres"]["status"] == "SUCCESS"
    assert cassandra_ids(cassandra, users) == {"user-alice", "user-bob", "user-carol"}
    assert postgres_ids(target, users) == {"user-alice", "user-bob", "user-carol"}


@pytest.mark.parametrize("key", ["1 OR 1=1", "1;DROP TABLE x", "0x10", "1.5", "", "%00"])
def test_injection_in_an_integer_key_is_a_400_with_nothing_executed(
    api: APIClient,
    table_pair: Callable[..., TableMapping],
    cassandra: Session,
    target: psycopg.Connection,
    key: str,
) -> None:
    mapping = table_pair("id int PRIMARY KEY, email text", "id int PRIMARY KEY, email text")
    cassandra.execute(f"INSERT INTO {mapping.cassandra_table} (id, email) VALUES (1, 'a@b')")
    target.execute(f"INSERT INTO public.{mapping.postgres_table} (id, email) VALUES (1, 'a@b')")
    path = f"/records/{mapping.cassandra_keyspace}/{mapping.cassandra_table}/{quote(key, safe='%')}"

    response = api.delete(path, {"reason": "ticket-53"}, format="json")

    assert response.status_code in (400, 404), response.content
    assert AuditLogEntry.objects.count() == 0
    assert [r["id"] for r in cassandra.execute(f"SELECT id FROM {mapping.cassandra_table}")] == [1]
    assert target.execute(f"SELECT id FROM public.{mapping.postgres_table}").fetchall() == [(1,)]


def test_an_integer_key_in_its_canonical_text_is_erased(
    api: APIClient,
    table_pair: Callable[..., TableMapping],
    cassandra: Session,
    target: psycopg.Connection,
) -> None:
    mapping = table_pair("id bigint PRIMARY KEY, email text", "id bigint PRIMARY KEY, email text")
    for user_id in (7, 8):
        cassandra.execute(f"INSERT INTO {mapping.cassandra_table} (id) VALUES ({user_id})")
        target.execute(f"INSERT INTO public.{mapping.postgres_table} (id) VALUES ({user_id})")

    response = api.delete(
        f"/records/{mapping.cassandra_keyspace}/{mapping.cassandra_table}/7?reason=ticket-54"
    )

    assert response.status_code == 200, response.content
    assert response.json()["cassandra"]["status"] == "SUCCESS"
    assert [r["id"] for r in cassandra.execute(f"SELECT id FROM {mapping.cassandra_table}")] == [8]
    assert target.execute(f"SELECT id FROM public.{mapping.postgres_table}").fetchall() == [(8,)]
