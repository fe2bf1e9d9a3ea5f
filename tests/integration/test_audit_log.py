"""The audit log is append-only (database trigger, read-only admin) and readable over the API."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Permission, User
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from cdcrecon.api.tokens import issue_token
from gdpr.admin import AuditLogEntryAdmin
from gdpr.models import AuditLogEntry, StoreStatus

pytestmark = pytest.mark.django_db


def entry(
    *,
    completed: bool = True,
    table: str = "users",
    keyspace: str = "warehouse",
    requester: str = "dpo",
    cassandra: str = StoreStatus.SUCCESS,
    postgres: str = StoreStatus.SUCCESS,
    requested_at: dt.datetime | None = None,
    key: str = "user-1",
) -> AuditLogEntry:
    requested_at = requested_at or timezone.now()
    return AuditLogEntry.objects.create(
        requester=requester,
        reason="ticket-1",
        keyspace=keyspace,
        table=table,
        primary_key=key,
        requested_at=requested_at,
        completed_at=requested_at + dt.timedelta(seconds=1) if completed else None,
        cassandra_status=cassandra if completed else StoreStatus.PENDING,
        postgres_status=postgres if completed else StoreStatus.PENDING,
    )


def refused(statement: str, params: list[object]) -> str:
    """Run raw SQL that the trigger must refuse; return PostgreSQL's message."""
    with pytest.raises(DatabaseError) as error, transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
    return str(error.value)


def api_client(*codenames: str, username: str = "auditor") -> APIClient:
    user = User.objects.create_user(username)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(user)[1]}")
    return client


# --- the trigger ------------------------------------------------------------------------------


def test_the_database_refuses_to_delete_an_entry() -> None:
    done, pending = entry(), entry(completed=False)

    for target in (done, pending):
        message = refused("DELETE FROM _cdc_audit_log WHERE id = %s", [target.pk])
        assert "append-only" in message and "cannot be deleted" in message

    assert AuditLogEntry.objects.filter(pk__in=[done.pk, pending.pk]).count() == 2


def test_the_database_refuses_a_delete_through_the_orm() -> None:
    done = entry()

    with pytest.raises(DatabaseError), transaction.atomic():
        AuditLogEntry.objects.filter(pk=done.pk).delete()

    assert AuditLogEntry.objects.filter(pk=done.pk).exists()


def test_the_database_refuses_to_change_a_completed_entry() -> None:
    done = entry(cassandra=StoreStatus.FAILED)

    message = refused(
        "UPDATE _cdc_audit_log SET cassandra_status = 'SUCCESS' WHERE id = %s", [done.pk]
    )
    assert "is completed and cannot be changed" in message
    refused("UPDATE _cdc_audit_log SET completed_at = NULL WHERE id = %s", [done.pk])
    refused("UPDATE _cdc_audit_log SET reason = 'nothing to see' WHERE id = %s", [done.pk])

    done.refresh_from_db()
    assert done.cassandra_status == StoreStatus.FAILED
    assert done.reason == "ticket-1"
    assert done.completed_at is not None


def test_the_database_allows_completing_a_pending_entry_once() -> None:
    pending = entry(completed=False)

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE _cdc_audit_log SET cassandra_status = 'SUCCESS', postgres_status = "
            "'NOT_FOUND', completed_at = now() WHERE id = %s",
            [pending.pk],
        )

    pending.refresh_from_db()
    assert (pending.cassandra_status, pending.postgres_status) == ("SUCCESS", "NOT_FOUND")
    assert pending.completed_at is not None
    refused("UPDATE _cdc_audit_log SET postgres_status = 'FAILED' WHERE id = %s", [pending.pk])


def test_the_database_refuses_to_rewrite_who_asked_for_what_even_while_pending() -> None:
    pending = entry(completed=False)

    for column, value in [
        ("requester", "someone-else"),
        ("reason", "edited"),
        ("primary_key", "user-2"),
        ('"table"', "orders"),
    ]:
        message = refused(
            f"UPDATE _cdc_audit_log SET {column} = %s WHERE id = %s",  # noqa: S608
            [value, pending.pk],
        )
        assert "only the outcome" in message

    pending.refresh_from_db()
    assert (pending.requester, pending.reason, pending.primary_key, pending.table) == (
        "dpo",
        "ticket-1",
        "user-1",
        "users",
    )


def redact(pk: int, details: dict[str, object], **also: object) -> None:
    AuditLogEntry.objects.filter(pk=pk).update(details=details, **also)


def test_a_completed_entry_may_only_lose_row_copies_from_its_details_once() -> None:
    with connection.cursor() as cursor:  # a repair entry as written: completed, with rows
        cursor.execute(
            'INSERT INTO _cdc_audit_log (action, requester, reason, keyspace, "table", '
            "primary_key, requested_at, completed_at, cassandra_status, cassandra_error, "
            "postgres_status, postgres_error, details) VALUES ('REPAIR', 'op', 'r', 'ks', 't', "
            "'k', now(), now(), 'SUCCESS', '', 'SUCCESS', '', %s) RETURNING id",
            ['{"before": {"email": "a@b"}, "mismatch_id": "m1"}'],
        )
        repaired = cursor.fetchone()[0]
    marker = {"_redacted": "GDPR erasure 1"}

    def refused_orm(**update: object) -> None:
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            AuditLogEntry.objects.filter(pk=repaired).update(**update)

    refused_orm(details={"mismatch_id": "m1", "extra": 1, **marker})  # adds a key
    refused_orm(details={"mismatch_id": "m2", **marker})  # changes a value
    refused_orm(details={"mismatch_id": "m1"})  # no note saying why
    refused_orm(details={"mismatch_id": "m1", **marker}, reason="changed")  # more than details

    redact(repaired, {"mismatch_id": "m1", **marker})
    assert AuditLogEntry.objects.get(pk=repaired).details == {"mismatch_id": "m1", **marker}
    refused_orm(details={"_redacted": "again"})  # only once


# --- the admin --------------------------------------------------------------------------------


@pytest.fixture
def superuser_client() -> Client:
    admin_user = User.objects.create_superuser("root", password="pw-for-tests")
    client = Client()
    client.force_login(admin_user)
    return client


def test_the_admin_lists_and_searches_entries_but_offers_no_add_change_or_delete(
    superuser_client: Client,
) -> None:
    done = entry(key="user-searchable")
    entry(key="user-other")

    listing = superuser_client.get("/admin/gdpr/auditlogentry/?q=user-searchable")
    assert listing.status_code == 200
    assert listing.context["cl"].result_count == 1
    assert b"/admin/gdpr/auditlogentry/add/" not in listing.content

    assert superuser_client.get("/admin/gdpr/auditlogentry/add/").status_code == 403
    assert superuser_client.get(f"/admin/gdpr/auditlogentry/{done.pk}/delete/").status_code == 403
    detail = superuser_client.get(f"/admin/gdpr/auditlogentry/{done.pk}/change/")
    assert detail.status_code == 200  # viewable, read-only
    assert b'name="_save"' not in detail.content
    posted = superuser_client.post(
        f"/admin/gdpr/auditlogentry/{done.pk}/change/", {"reason": "rewritten"}
    )
    assert posted.status_code == 403
    done.refresh_from_db()
    assert done.reason == "ticket-1"


def test_the_admin_denies_every_write_permission_even_to_a_superuser(rf) -> None:
    request = rf.get("/admin/gdpr/auditlogentry/")
    request.user = User.objects.create_superuser("root2", password="pw-for-tests")
    model_admin = AuditLogEntryAdmin(AuditLogEntry, admin_site=None)  # type: ignore[arg-type]
    done = entry()

    assert model_admin.has_add_permission(request) is False
    assert model_admin.has_change_permission(request, done) is False
    assert model_admin.has_delete_permission(request, done) is False
    assert model_admin.has_view_permission(request, done) is True


def test_the_admin_filters_by_status_of_either_store(superuser_client: Client) -> None:
    entry(cassandra=StoreStatus.FAILED, key="user-c-failed")
    entry(postgres=StoreStatus.FAILED, key="user-p-failed")
    entry(key="user-fine")

    listing = superuser_client.get("/admin/gdpr/auditlogentry/?status=FAILED")

    assert listing.status_code == 200
    keys = {e.primary_key for e in listing.context["cl"].result_list}
    assert keys == {"user-c-failed", "user-p-failed"}


# --- GET /records/audit -----------------------------------------------------------------------


def test_reading_the_audit_log_needs_a_token_and_the_view_permission() -> None:
    assert APIClient().get("/records/audit").status_code == 401
    eraser_only = api_client("erase_record", username="eraser")
    response = eraser_only.get("/records/audit")
    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied"


def test_the_audit_log_is_listed_newest_first_in_the_envelope() -> None:
    now = timezone.now()
    older = entry(requested_at=now - dt.timedelta(hours=2), key="user-old")
    newer = entry(requested_at=now - dt.timedelta(hours=1), key="user-new")

    response = api_client("view_auditlogentry").get("/records/audit")

    assert response.status_code == 200
    body = response.json()
    assert (body["total"], body["limit"], body["offset"]) == (2, 100, 0)
    assert [e["id"] for e in body["entries"]] == [newer.pk, older.pk]
    first = body["entries"][0]
    assert first["primary_key"] == "user-new"
    assert first["requester"] == "dpo" and first["reason"] == "ticket-1"
    assert first["cassandra_status"] == "SUCCESS" and first["postgres_status"] == "SUCCESS"
    assert first["completed_at"] is not None


def test_the_audit_log_filters_by_table_keyspace_requester_status_and_dates() -> None:
    now = timezone.now()
    a = entry(table="users", requester="alice", requested_at=now - dt.timedelta(days=3))
    b = entry(table="orders", requester="bob", cassandra=StoreStatus.FAILED)
    c = entry(table="users", keyspace="other", postgres=StoreStatus.NOT_FOUND)
    client = api_client("view_auditlogentry")

    def ids(query: str) -> set[int]:
        response = client.get(f"/records/audit?{query}")
        assert response.status_code == 200, response.content
        return {e["id"] for e in response.json()["entries"]}

    assert ids("table=users") == {a.pk, c.pk}
    assert ids("keyspace=other") == {c.pk}
    assert ids("requester=bob") == {b.pk}
    assert ids("status=FAILED") == {b.pk}
    assert ids("status=NOT_FOUND") == {c.pk}
    assert ids("status=SUCCESS") == {a.pk, b.pk, c.pk}
    since = (now - dt.timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert ids(f"from_date={since}") == {b.pk, c.pk}
    assert ids(f"to_date={since}") == {a.pk}


def test_the_audit_log_pages_with_limit_and_offset() -> None:
    now = timezone.now()
    created = [entry(requested_at=now - dt.timedelta(minutes=i), key=f"u{i}") for i in range(5)]
    client = api_client("view_auditlogentry")

    response = client.get("/records/audit?limit=2&offset=1")

    body = response.json()
    assert (body["total"], body["limit"], body["offset"]) == (5, 2, 1)
    assert [e["id"] for e in body["entries"]] == [created[1].pk, created[2].pk]
    assert client.get("/records/audit?limit=1000").json()["limit"] == 1000


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=1001", "limit=ten", "offset=-1", "status=LOST", "from_date=yesterday"],
)
def test_a_bad_audit_log_query_is_a_400(query: str) -> None:
    response = api_client("view_auditlogentry").get(f"/records/audit?{query}")

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid_request"
    assert query.split("=")[0] in body["fields"]
