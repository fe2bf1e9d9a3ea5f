"""GDPR erasure: DELETE /records/{keyspace}/{table}/{primary_key} against the real stores."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from cassandra.cluster import Session
from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.core import serializers
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

import reconciliation.connections as connections
from cdcrecon.api.tokens import issue_token
from gdpr.models import AuditAction, AuditLogEntry
from reconciliation.choices import JobStatus, MismatchType, ResolutionStatus, ValidationStrategy
from reconciliation.models import Mismatch, ReconciliationJob, TableMapping
from tests.support import free_port

pytestmark = pytest.mark.django_db

USERS_CASSANDRA = "id text PRIMARY KEY, email text, name text"
USERS_POSTGRES = "id text PRIMARY KEY, email text, name text, _cdc_updated_at timestamptz"
EVENTS_CASSANDRA = "tenant text, day date, seq int, payload text, PRIMARY KEY ((tenant, day), seq)"
EVENTS_POSTGRES = "tenant text, day date, seq int, payload text, PRIMARY KEY (tenant, day, seq)"


# --- helpers and fixtures ---------------------------------------------------------------------


def client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(user)[1]}")
    return client


def user_with(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, password="not-used-here")
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return User.objects.get(pk=user.pk)  # fresh: no cached permissions


@pytest.fixture
def dpo() -> User:
    """The data protection officer: may erase records."""
    return user_with("dpo", "erase_record")


@pytest.fixture
def api(dpo: User) -> APIClient:
    return client_for(dpo)


def url(mapping: TableMapping, key: str, keyspace: str | None = None) -> str:
    keyspace = keyspace or mapping.cassandra_keyspace
    return f"/records/{keyspace}/{mapping.cassandra_table}/{quote(key, safe='')}"


def composite(*parts: str) -> str:
    return json.dumps(list(parts))


def cassandra_ids(cassandra: Session, mapping: TableMapping) -> set[str]:
    return {row["id"] for row in cassandra.execute(f"SELECT id FROM {mapping.cassandra_table}")}


def postgres_ids(target: psycopg.Connection, mapping: TableMapping) -> set[str]:
    return {row[0] for row in target.execute(f"SELECT id FROM public.{mapping.postgres_table}")}


@pytest.fixture
def users(
    cassandra: Session, target: psycopg.Connection, table_pair: Callable[..., TableMapping]
) -> TableMapping:
    """A users table with alice, bob and carol in both stores."""
    mapping = table_pair(USERS_CASSANDRA, USERS_POSTGRES)
    for user_id, email, name in [
        ("user-alice", "alice@example.com", "Alice Liddell"),
        ("user-bob", "bob@example.com", "Bob Builder"),
        ("user-carol", "carol@example.com", "Carol Danvers"),
    ]:
        cassandra.execute(
            f"INSERT INTO {mapping.cassandra_table} (id, email, name) VALUES (%s, %s, %s)",
            (user_id, email, name),
        )
        target.execute(
            f"INSERT INTO public.{mapping.postgres_table} (id, email, name) VALUES (%s, %s, %s)",
            (user_id, email, name),
        )
    return mapping


@pytest.fixture
def events(
    cassandra: Session, target: psycopg.Connection, table_pair: Callable[..., TableMapping]
) -> TableMapping:
    """A table keyed by ((tenant, day), seq): three events of acme on one day, one of globex."""
    mapping = table_pair(EVENTS_CASSANDRA, EVENTS_POSTGRES)
    rows = [
        ("acme", dt.date(2025, 11, 25), 1, "login from 10.0.0.1"),
        ("acme", dt.date(2025, 11, 25), 2, "email changed to x@acme.test"),
        ("acme", dt.date(2025, 11, 25), 3, "logout"),
        ("globex", dt.date(2025, 11, 25), 2, "login"),
    ]
    for row in rows:
        cassandra.execute(
            f"INSERT INTO {mapping.cassandra_table} (tenant, day, seq, payload) "
            "VALUES (%s, %s, %s, %s)",
            row,
        )
        target.execute(
            f"INSERT INTO public.{mapping.postgres_table} (tenant, day, seq, payload) "
            "VALUES (%s, %s, %s, %s)",
            row,
        )
    return mapping


def event_keys(cassandra: Session, target: psycopg.Connection, mapping: TableMapping) -> tuple:
    in_cassandra = {
        (r["tenant"], str(r["day"]), r["seq"])
        for r in cassandra.execute(f"SELECT tenant, day, seq FROM {mapping.cassandra_table}")
    }
    in_postgres = {
        (r[0], str(r[1]), r[2])
        for r in target.execute(f"SELECT tenant, day, seq FROM public.{mapping.postgres_table}")
    }
    return in_cassandra, in_postgres


def mismatch(mapping: TableMapping, key: str, **fields: Any) -> Mismatch:
    job = ReconciliationJob.objects.create(
        table_name=mapping.name,
        validation_strategy=ValidationStrategy.CHECKSUM,
        status=JobStatus.COMPLETED,
    )
    values: dict[str, Any] = {
        "mismatch_type": MismatchType.DATA_MISMATCH,
        "cassandra_checksum": "a" * 64,
        "postgres_checksum": "b" * 64,
        "cassandra_data": {"id": key, "email": f"{key}@example.com"},
        "postgres_data": {"id": key, "email": f"{key}.old@example.com"},
        **fields,
    }
    return Mismatch.objects.create(
        job=job, table_name=mapping.name, primary_key_value=key, **values
    )


def app_tables_dump() -> str:
    """Every row of every table of our own apps, as JSON text."""
    models = [*apps.get_app_config("reconciliation").get_models()]
    models += [*apps.get_app_config("gdpr").get_models()]
    return "".join(serializers.serialize("json", model.objects.all()) for model in models)


# --- a one-column key -------------------------------------------------------------------------


def test_it_erases_a_row_from_both_stores_and_completes_the_audit_entry(
    api: APIClient, users: TableMapping, cassandra: Session, target: psycopg.Connection
) -> None:
    response = api.delete(url(users, "user-alice"), {"reason": "ticket-42"}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["erased"] is True
    assert body["cassandra"] == {"status": "SUCCESS", "error": ""}
    assert body["postgres"] == {"status": "SUCCESS", "error": ""}
    assert body["primary_key"] == "user-alice"
    assert cassandra_ids(cassandra, users) == {"user-bob", "user-carol"}
    assert postgres_ids(target, users) == {"user-bob", "user-carol"}

    entry = AuditLogEntry.objects.get(pk=body["audit_id"])
    assert entry.requester == "dpo"
    assert entry.reason == "ticket-42"
    assert (entry.keyspace, entry.table, entry.primary_key) == (
        users.cassandra_keyspace,
        users.cassandra_table,
        "user-alice",
    )
    assert (entry.cassandra_status, entry.postgres_status) == ("SUCCESS", "SUCCESS")
    assert entry.completed_at is not None and entry.completed_at >= entry.requested_at


def test_the_reason_may_come_from_the_query_string(
    api: APIClient, users: TableMapping, target: psycopg.Connection
) -> None:
    response = api.delete(url(users, "user-bob") + "?reason=ticket-43")

    assert response.status_code == 200, response.content
    assert AuditLogEntry.objects.get().reason == "ticket-43"
    assert postgres_ids(target, users) == {"user-alice", "user-carol"}


@pytest.mark.parametrize("query, body", [("", None), ("", {"reason": "   "}), ("?reason=", None)])
def test_a_request_without_a_reason_is_refused_and_touches_nothing(
    api: APIClient,
    users: TableMapping,
    cassandra: Session,
    target: psycopg.Connection,
    query: str,
    body: dict[str, str] | None,
) -> None:
    response = api.delete(url(users, "user-alice") + query, body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_request"
    assert "reason" in response.json()["fields"]
    assert AuditLogEntry.objects.count() == 0
    assert "user-alice" in cassandra_ids(cassandra, users)
    assert "user-alice" in postgres_ids(target, users)


def test_captured_mismatch_data_of_the_key_is_scrubbed_but_the_mismatch_kept(
    api: APIClient, users: TableMapping
) -> None:
    # At most one open difference per key (issue 11): the earlier one was resolved.
    erased = mismatch(users, "user-alice", resolution_status=ResolutionStatus.MANUAL_RESOLVED)
    one_sided = mismatch(
        users,
        "user-alice",
        mismatch_type=MismatchType.MISSING_IN_POSTGRES,
        postgres_data=None,
        postgres_checksum=None,
    )
    other_key = mismatch(users, "user-bob")

    response = api.delete(url(users, "user-alice"), {"reason": "ticket-42"}, format="json")

    assert response.status_code == 200, response.content
    marker = {"_redacted": f"GDPR erasure {response.json()['audit_id']}"}
    assert response.json()["mismatches_scrubbed"] == 2
    erased.refresh_from_db()
    assert erased.resolution_status == ResolutionStatus.MANUAL_RESOLVED
    assert erased.cassandra_data == marker and erased.postgres_data == marker
    assert erased.cassandra_checksum is None and erased.postgres_checksum is None
    assert erased.erased_at is not None
    one_sided.refresh_from_db()
    assert one_sided.cassandra_data == marker and one_sided.postgres_data is None
    other_key.refresh_from_db()
    assert other_key.cassandra_data == {"id": "user-bob", "email": "user-bob@example.com"}
    assert other_key.erased_at is None
    # Nothing personal about alice is left in our tables, only the key on the audit entry.
    dump = app_tables_dump()
    assert "user-alice@example.com" not in dump and "user-alice.old@example.com" not in dump
    assert "user-bob@example.com" in dump  # the check can see captured data


def test_a_repairs_copies_of_the_row_on_earlier_audit_entries_are_redacted(
    api: APIClient, users: TableMapping
) -> None:
    def repair_entry(key: str) -> AuditLogEntry:
        return AuditLogEntry.objects.create(
            action=AuditAction.REPAIR,
            requester="operator",
            reason="repair of mismatch 1234",
            keyspace=users.cassandra_keyspace,
            table=users.cassandra_table,
            primary_key=key,
            completed_at=timezone.now(),
            cassandra_status="SUCCESS",
            postgres_status="SUCCESS",
            details={
                "before": {"id": key, "email": f"{key}.old@example.com"},
                "after": {"id": key, "email": f"{key}@example.com"},
                "mismatch_id": "1234",
                "action": "upserted",
            },
        )

    alices, bobs = repair_entry("user-alice"), repair_entry("user-bob")

    response = api.delete(url(users, "user-alice"), {"reason": "ticket-42"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["audit_entries_redacted"] == 1
    alices.refresh_from_db()
    assert alices.details == {
        "mismatch_id": "1234",
        "action": "upserted",
        "_redacted": f"GDPR erasure {response.json()['audit_id']}",
    }
    assert (alices.requester, alices.reason, alices.primary_key) == (
        "operator",
        "repair of mismatch 1234",
        "user-alice",
    )
    bobs.refresh_from_db()
    assert bobs.details["after"] == {"id": "user-bob", "email": "user-bob@example.com"}
    dump = app_tables_dump()
    assert "user-alice@example.com" not in dump and "user-alice.old@example.com" not in dump


def test_a_repeated_request_is_safe_and_reports_nothing_left_to_delete(
    api: APIClient, users: TableMapping, target: psycopg.Connection
) -> None:
    first = api.delete(url(users, "user-alice"), {"reason": "ticket-42"}, format="json")
    again = api.delete(url(users, "user-alice"), {"reason": "ticket-42"}, format="json")

    assert first.status_code == 200 and again.status_code == 200, again.content
    assert again.json()["cassandra"]["status"] == "NOT_FOUND"
    assert again.json()["postgres"]["status"] == "NOT_FOUND"
    assert again.json()["erased"] is True
    assert AuditLogEntry.objects.count() == 2  # every request is on the record
    assert postgres_ids(target, users) == {"user-bob", "user-carol"}


def test_a_key_only_in_cassandra_is_erased_there_and_not_found_in_postgres(
    api: APIClient, users: TableMapping, cassandra: Session, target: psycopg.Connection
) -> None:
    target.execute(f"DELETE FROM public.{users.postgres_table} WHERE id = 'user-carol'")

    response = api.delete(url(users, "user-carol"), {"reason": "ticket-44"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["cassandra"]["status"] == "SUCCESS"
    assert response.json()["postgres"]["status"] == "NOT_FOUND"
    assert cassandra_ids(cassandra, users) == {"user-alice", "user-bob"}


def test_a_key_only_in_postgres_is_erased_there_and_not_found_in_cassandra(
    api: APIClient, users: TableMapping, cassandra: Session, target: psycopg.Connection
) -> None:
    cassandra.execute(f"DELETE FROM {users.cassandra_table} WHERE id = 'user-carol'")

    response = api.delete(url(users, "user-carol"), {"reason": "ticket-45"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["cassandra"]["status"] == "NOT_FOUND"
    assert response.json()["postgres"]["status"] == "SUCCESS"
    assert postgres_ids(target, users) == {"user-alice", "user-bob"}
    entry = AuditLogEntry.objects.get()
    assert (entry.cassandra_status, entry.postgres_status) == ("NOT_FOUND", "SUCCESS")


def test_a_key_in_neither_store_is_not_found_in_both(api: APIClient, users: TableMapping) -> None:
    response = api.delete(url(users, "user-nobody"), {"reason": "ticket-46"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["cassandra"]["status"] == "NOT_FOUND"
    assert response.json()["postgres"]["status"] == "NOT_FOUND"


# --- a composite key --------------------------------------------------------------------------


def test_it_erases_one_row_of_a_composite_key_and_leaves_its_partition_siblings(
    api: APIClient, events: TableMapping, cassandra: Session, target: psycopg.Connection
) -> None:
    stored_key = '["acme","2025-11-25","2"]'
    scrubbed = mismatch(events, stored_key, cassandra_data={"payload": "x@acme.test"})

    # The JSON may be spaced as the caller likes; the audit keeps the canonical text.
    response = api.delete(
        url(events, composite("acme", "2025-11-25", "2")), {"reason": "ticket-50"}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["primary_key"] == stored_key
    assert response.json()["cassandra"]["status"] == "SUCCESS"
    assert response.json()["postgres"]["status"] == "SUCCESS"
    remaining = {
        ("acme", "2025-11-25", 1),
        ("acme", "2025-11-25", 3),
        ("globex", "2025-11-25", 2),
    }
    assert event_keys(cassandra, target, events) == (remaining, remaining)
    assert AuditLogEntry.objects.get().primary_key == stored_key
    scrubbed.refresh_from_db()
    assert scrubbed.cassandra_data == {"_redacted": f"GDPR erasure {response.json()['audit_id']}"}


@pytest.mark.parametrize(
    "key",
    [
        "acme",  # not a JSON array
        composite("acme", "2025-11-25"),  # too few parts
        composite("acme", "2025-11-25", "2", "9"),  # too many parts
        '["acme","2025-11-25",2]',  # a number, not its text
        composite("acme", "2025-13-40", "2"),  # not a date
        composite("acme", "2025-11-25", "two"),  # not an int
        composite("acme", "2025-11-25", "2'; DROP TABLE x; --"),
    ],
)
def test_a_malformed_composite_key_is_a_400_and_touches_nothing(
    api: APIClient,
    events: TableMapping,
    cassandra: Session,
    target: psycopg.Connection,
    key: str,
) -> None:
    before = event_keys(cassandra, target, events)

    response = api.delete(url(events, key), {"reason": "ticket-51"}, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_key"
    assert "primary_key" in response.json()["fields"]
    assert AuditLogEntry.objects.count() == 0
    assert event_keys(cassandra, target, events) == before
    assert len(before[0]) == 4


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


# --- a store that is down ---------------------------------------------------------------------


def test_an_unreachable_cassandra_is_recorded_as_failed_and_a_retry_completes_the_erasure(
    api: APIClient,
    users: TableMapping,
    cassandra: Session,
    target: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stopped = dataclasses.replace(settings.CASSANDRA, port=free_port())
    with monkeypatch.context() as patch, override_settings(CASSANDRA=stopped):
        # Hide the shared session rather than close it: the session-scoped `cassandra`
        # fixture (and other tests) keep using it once the node is "restarted".
        patch.setattr(connections, "_session", None)
        down = api.delete(url(users, "user-alice"), {"reason": "ticket-60"}, format="json")
        connections.close_cassandra()  # drop anything built against the closed port

    assert down.status_code == 502, down.content
    body = down.json()
    assert body["error"] == "erasure_incomplete"
    assert "cassandra" in body["detail"]
    assert body["erased"] is False
    assert body["cassandra"]["status"] == "FAILED"
    assert str(stopped.port) in body["cassandra"]["error"]
    assert body["postgres"]["status"] == "SUCCESS"
    entry = AuditLogEntry.objects.get(pk=body["audit_id"])
    assert (entry.cassandra_status, entry.postgres_status) == ("FAILED", "SUCCESS")
    assert entry.completed_at is not None
    assert "user-alice" in cassandra_ids(cassandra, users)  # still there: nothing pretended
    assert "user-alice" not in postgres_ids(target, users)

    # Cassandra is back: the same request finishes the job.
    retry = api.delete(url(users, "user-alice"), {"reason": "ticket-60"}, format="json")

    assert retry.status_code == 200, retry.content
    assert retry.json()["cassandra"]["status"] == "SUCCESS"
    assert retry.json()["postgres"]["status"] == "NOT_FOUND"
    assert cassandra_ids(cassandra, users) == {"user-bob", "user-carol"}
    assert AuditLogEntry.objects.count() == 2
    entry.refresh_from_db()
    assert entry.cassandra_status == "FAILED"  # the first attempt's record is unchanged


def test_an_unreachable_target_is_recorded_as_failed_and_a_retry_completes_the_erasure(
    api: APIClient, users: TableMapping, cassandra: Session, target: psycopg.Connection
) -> None:
    closed = f"postgres://cdcrecon@127.0.0.1:{free_port()}/warehouse_test"
    with override_settings(TARGET=dataclasses.replace(settings.TARGET, database_url=closed)):
        down = api.delete(url(users, "user-bob"), {"reason": "ticket-61"}, format="json")

    assert down.status_code == 502, down.content
    assert down.json()["cassandra"]["status"] == "SUCCESS"
    assert down.json()["postgres"]["status"] == "FAILED"
    assert "unreachable" in down.json()["postgres"]["error"]
    assert "user-bob" in postgres_ids(target, users)

    retry = api.delete(url(users, "user-bob"), {"reason": "ticket-61"}, format="json")

    assert retry.status_code == 200, retry.content
    assert retry.json()["cassandra"]["status"] == "NOT_FOUND"
    assert retry.json()["postgres"]["status"] == "SUCCESS"
    assert postgres_ids(target, users) == {"user-alice", "user-carol"}


@pytest.mark.parametrize(
    "configured, used",
    [
        ("ONE", "LOCAL_QUORUM"),
        ("LOCAL_ONE", "LOCAL_QUORUM"),
        ("TWO", "LOCAL_QUORUM"),
        ("LOCAL_QUORUM", "LOCAL_QUORUM"),
        ("QUORUM", "QUORUM"),
        ("EACH_QUORUM", "EACH_QUORUM"),
        ("ALL", "ALL"),
    ],
)
def test_erasure_uses_at_least_a_quorum_consistency_level(configured: str, used: str) -> None:
    from cassandra import ConsistencyLevel

    from gdpr.erasure import erasure_consistency_level

    conf = dataclasses.replace(settings.CASSANDRA, consistency=configured)
    with override_settings(CASSANDRA=conf):
        assert erasure_consistency_level() == getattr(ConsistencyLevel, used)
