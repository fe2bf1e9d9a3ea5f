"""GDPR erasure: DELETE /records/{keyspace}/{table}/{primary_key} against the real stores:
what it erases, scrubs and audits, and how it survives a store that is down."""

from __future__ import annotations

import dataclasses

import psycopg
import pytest
from cassandra.cluster import Session
from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

import reconciliation.connections as connections
from gdpr.models import AuditAction, AuditLogEntry
from reconciliation.choices import MismatchType, ResolutionStatus
from reconciliation.models import TableMapping
from tests.integration.erasure.support import (
    app_tables_dump,
    cassandra_ids,
    composite,
    event_keys,
    mismatch,
    postgres_ids,
    url,
)
from tests.support import free_port

pytestmark = pytest.mark.django_db


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
