"""Repairing a mismatch from Cassandra, against the real Cassandra node and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import ipaddress
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import reconciliation.api.repair  # noqa: F401  (maps RepairFailed to its HTTP statuses)
from cdcrecon.api.errors import status_for
from cdcrecon.api.tokens import issue_token
from gdpr.models import AuditAction, AuditLogEntry, StoreStatus
from reconciliation import connections
from reconciliation.choices import JobStatus, MismatchType, ResolutionStatus, ValidationStrategy
from reconciliation.jobs import create_job, run_in_process
from reconciliation.models import Mismatch, ReconciliationJob, TableMapping
from reconciliation.repair.manual import RepairFailed, repair_mismatch
from tests.support import free_port

pytestmark = pytest.mark.django_db

USERS = "id text PRIMARY KEY, email text, score int"
USERS_PG = (
    "id text PRIMARY KEY, email text, score integer, _cdc_operation text NOT NULL DEFAULT 'INSERT'"
)


@pytest.fixture
def take_cassandra_down(settings: Any) -> Iterator[Callable[[], None]]:
    """Make Cassandra unreachable: the settings point at a port nobody listens on.

    The real node is never touched; the settings come back after the test and the next
    ``cassandra_session()`` connects to it again.
    """

    def down() -> None:
        settings.CASSANDRA = dataclasses.replace(settings.CASSANDRA, port=free_port())
        connections.close_cassandra()

    yield down
    connections.close_cassandra()  # anything built against the dead port


@pytest.fixture
def operator(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("alice", password="pw")


def make_mismatch(
    mapping: TableMapping,
    key: str,
    mismatch_type: str,
    cassandra_data: dict[str, Any] | None = None,
    postgres_data: dict[str, Any] | None = None,
) -> Mismatch:
    job = ReconciliationJob.objects.create(
        table_name=mapping.name,
        validation_strategy=ValidationStrategy.CHECKSUM,
        status=JobStatus.COMPLETED,
        mismatch_count=1,
    )
    return Mismatch.objects.create(
        job=job,
        table_name=mapping.name,
        primary_key_value=key,
        mismatch_type=mismatch_type,
        cassandra_checksum="a" * 64 if cassandra_data else None,
        postgres_checksum="b" * 64 if postgres_data else None,
        cassandra_data=cassandra_data,
        postgres_data=postgres_data,
    )


def target_row(target: Any, mapping: TableMapping, where: str, *params: Any) -> Any:
    return target.execute(
        f"SELECT * FROM public.{mapping.postgres_table} WHERE {where}", params
    ).fetchone()


# --- each mismatch type -----------------------------------------------------------------


def test_a_row_missing_in_postgres_is_upserted_with_its_values_converted_to_the_target_types(
    cassandra, target, table_pair, operator
) -> None:
    udt = f"addr_{uuid.uuid4().hex[:8]}"
    cassandra.execute(f"CREATE TYPE {udt} (street text, zip text)")
    mapping = table_pair(
        "id text PRIMARY KEY, email text, tags set<text>, prefs map<text, int>, "
        "scores list<int>, born date, seen_at timestamp, balance decimal, ratio double, "
        f"active boolean, ref uuid, home frozen<{udt}>, pair frozen<tuple<int, text>>, "
        "ip inet, at_time time, only_in_cassandra text",
        "id text PRIMARY KEY, email text, tags text[], prefs jsonb, scores integer[], "
        "born date, seen_at timestamptz, balance numeric, ratio double precision, "
        "active boolean, ref uuid, home jsonb, pair jsonb, ip inet, at_time time, "
        "_cdc_ingested_at timestamptz NOT NULL DEFAULT now()",
    )
    ref = uuid.uuid4()
    cassandra.execute(
        f"INSERT INTO {mapping.cassandra_table} (id, email, tags, prefs, scores, born, seen_at, "
        "balance, ratio, active, ref, home, pair, ip, at_time, only_in_cassandra) VALUES ("
        "'u1', 'a@example.com', {'b', 'a'}, {'x': 1, 'y': 2}, [3, 1, 2], '1990-05-17', "
        "'2025-11-25 10:00:00.123+0000', 12.50, 0.25, true, "
        f"{ref}, {{street: 'Main 1', zip: '1000'}}, (7, 'seven'), '10.0.0.1', "
        "'08:30:00.000001', 'ignored')"
    )
    mismatch = make_mismatch(
        mapping, "u1", MismatchType.MISSING_IN_POSTGRES, {"id": "u1", "email": "a@example.com"}
    )

    result = repair_mismatch(mismatch, operator)

    row = target.execute(
        f"SELECT id, email, tags, prefs, scores, born, seen_at, balance, ratio, active, ref, "
        f"home, pair, ip, at_time FROM public.{mapping.postgres_table}"
    ).fetchall()
    assert row == [
        (
            "u1",
            "a@example.com",
            ["a", "b"],
            {"x": 1, "y": 2},
            [3, 1, 2],
            dt.date(1990, 5, 17),
            dt.datetime(2025, 11, 25, 10, 0, 0, 123000, tzinfo=dt.UTC),
            decimal.Decimal("12.50"),
            0.25,
            True,
            ref,
            {"street": "Main 1", "zip": "1000"},
            [7, "seven"],
            ipaddress.ip_address("10.0.0.1"),
            dt.time(8, 30, 0, 1),
        )
    ]
    assert result.action == "upserted"
    mismatch.refresh_from_db()
    assert mismatch.resolution_status == ResolutionStatus.AUTO_RESOLVED
    assert mismatch.resolved_by == operator
    assert mismatch.resolved_at is not None
    assert "upserted the current source row into public." in mismatch.resolution_notes
    assert "only_in_cassandra" not in mismatch.resolution_notes  # not a column both sides have
    # and the engine's own equality rules now find the two rows equal
    check = run_in_process(create_job(mapping, ValidationStrategy.CHECKSUM))
    assert check.status == JobStatus.COMPLETED, check.error_message
    assert (check.mismatch_count, check.keys_examined) == (0, 1)


def test_a_data_mismatch_overwrites_the_compared_columns_and_is_audited(
    cassandra, target, table_pair, operator
) -> None:
    mapping = table_pair(USERS, USERS_PG)
    cassandra.execute(
        f"INSERT INTO {mapping.cassandra_table} (id, email, score) VALUES ('u2', 'new@x.io', 5)"
    )
    target.execute(
        f"INSERT INTO public.{mapping.postgres_table} (id, email, score, _cdc_operation) "
        "VALUES ('u2', 'old@x.io', 5, 'UPDATE')"
    )
    mismatch = make_mismatch(
        mapping,
        "u2",
        MismatchType.DATA_MISMATCH,
        {"id": "u2", "email": "new@x.io", "score": 5},
        {"id": "u2", "email": "old@x.io", "score": 5},
    )

    repair_mismatch(mismatch, operator)

    assert target_row(target, mapping, "id = %s", "u2") == ("u2", "new@x.io", 5, "UPDATE")
    entry = AuditLogEntry.objects.get(reason=f"repair of mismatch {mismatch.mismatch_id}")
    assert entry.action == AuditAction.REPAIR
    assert entry.requester == "alice"
    assert (entry.keyspace, entry.table, entry.primary_key) == (
        mapping.cassandra_keyspace,
        mapping.cassandra_table,
        "u2",
    )
    assert entry.cassandra_status == StoreStatus.SUCCESS
    assert entry.postgres_status == StoreStatus.SUCCESS
    assert entry.completed_at is not None
    assert entry.details["before"] == {
        "id": "u2",
        "email": "old@x.io",
        "score": 5,
        "_cdc_operation": "UPDATE",
    }
    assert entry.details["after"]["email"] == "new@x.io"
    mismatch.refresh_from_db()
    assert mismatch.resolution_status == ResolutionStatus.AUTO_RESOLVED
    assert "changed since detection" not in mismatch.resolution_notes


def test_a_row_missing_in_cassandra_is_deleted_after_cassandra_confirms_it_is_absent(
    cassandra, target, table_pair, operator
) -> None:
    mapping = table_pair(USERS, USERS_PG)
    target.execute(
        f"INSERT INTO public.{mapping.postgres_table} (id, email, score) VALUES ('ghost', 'g@x', 1)"
    )
    mismatch = make_mismatch(
        mapping, "ghost", MismatchType.MISSING_IN_CASSANDRA, None, {"id": "ghost", "email": "g@x"}
    )

    result = repair_mismatch(mismatch, operator)

    assert target_row(target, mapping, "id = %s", "ghost") is None
    assert result.action == "deleted"
    mismatch.refresh_from_db()
    assert mismatch.resolution_status == ResolutionStatus.AUTO_RESOLVED
    assert "deleted the row from public." in mismatch.resolution_notes
    assert "still absent" in mismatch.resolution_notes
    entry = result.audit_entry
    assert entry.cassandra_status == StoreStatus.NOT_FOUND
    assert entry.postgres_status == StoreStatus.SUCCESS
    assert entry.details["before"]["email"] == "g@x"
    assert entry.details["after"] is None


def test_a_row_missing_in_cassandra_that_now_exists_there_is_upserted_instead(
    cassandra, target, table_pair, operator
) -> None:
    mapping = table_pair(USERS, USERS_PG)
    target.execute(
        f"INSERT INTO public.{mapping.postgres_table} (id, email, score) VALUES ('late', 'old', 1)"
    )
    mismatch = make_mismatch(
        mapping, "late", MismatchType.MISSING_IN_CASSANDRA, None, {"id": "late"}
    )
    cassandra.execute(
        f"INSERT INTO {mapping.cassandra_table} (id, email, score) VALUES ('late', 'fresh', 2)"
    )

    result = repair_mismatch(mismatch, operator)

    assert target_row(target, mapping, "id = %s", "late")[:3] == ("late", "fresh", 2)
    assert result.action == "upserted"
    mismatch.refresh_from_db()
    assert "now exists in Cassandra" in mismatch.resolution_notes
    assert "upserted instead of deleted" in mismatch.resolution_notes


def test_a_source_row_changed_since_detection_is_written_as_it_is_now_and_the_note_says_so(
    cassandra, target, table_pair, operator
) -> None:
    mapping = table_pair(USERS, USERS_PG)
    target.execute(
        f"INSERT INTO public.{mapping.postgres_table} (id, email, score) VALUES ('u3', 'v1', 1)"
    )
    mismatch = make_mismatch(
        mapping,
        "u3",
        MismatchType.DATA_MISMATCH,
        {"id": "u3", "email": "v2", "score": 1},
        {"id": "u3", "email": "v1", "score": 1},
    )
    cassandra.execute(
        f"INSERT INTO {mapping.cassandra_table} (id, email, score) VALUES ('u3', 'v3', 1)"
    )

    result = repair_mismatch(mismatch, operator)

    assert target_row(target, mapping, "id = %s", "u3")[:3] == ("u3", "v3", 1)
    assert result.changed_columns == ["email"]
    mismatch.refresh_from_db()
    assert "changed since detection (columns: email)" in mismatch.resolution_notes


def test_a_row_deleted_from_cassandra_since_detection_is_deleted_from_the_target(
    cassandra, target, table_pair, operator
) -> None:
    mapping = table_pair(USERS, USERS_PG)
    target.execute(
        f"INSERT INTO public.{mapping.postgres_table} (id, email, score) VALUES ('u4', 'stale', 1)"
    )
    mismatch = make_mismatch(
        mapping,
        "u4",
        MismatchType.DATA_MISMATCH,
        {"id": "u4", "email": "newer", "score": 1},
        {"id": "u4", "email": "stale", "score": 1},
    )  # ... and the row was deleted in Cassandra after the job saw it

    result = repair_mismatch(mismatch, operator)

    assert target_row(target, mapping, "id = %s", "u4") is None
    assert result.changed_columns == ["(row deleted)"]
    mismatch.refresh_from_db()
    assert mismatch.resolution_status == ResolutionStatus.AUTO_RESOLVED
    assert "no longer exists in Cassandra" in mismatch.resolution_notes


def test_a_composite_key_row_is_repaired_by_its_full_key(
    cassandra, target, table_pair, operator
) -> None:
    mapping = table_pair(
        "tenant text, day date, seq int, payload text, PRIMARY KEY ((tenant, day), seq)",
        "tenant text, day date, seq integer, payload text, PRIMARY KEY (tenant, day, seq)",
    )
    for seq, payload in ((1, "one"), (2, "two")):
        cassandra.execute(
            f"INSERT INTO {mapping.cassandra_table} (tenant, day, seq, payload) "
            f"VALUES ('acme', '2025-11-25', {seq}, '{payload}')"
        )
    target.execute(
        f"INSERT INTO public.{mapping.postgres_table} VALUES ('acme', '2025-11-25', 1, 'one'), "
        "('acme', '2025-11-25', 2, 'TWO?')"
    )
    mismatch = make_mismatch(
        mapping, '["acme","2025-11-25","2"]', MismatchType.DATA_MISMATCH, {"payload": "two"}
    )

    repair_mismatch(mismatch, operator)

    rows = target.execute(
        f"SELECT seq, payload FROM public.{mapping.postgres_table} ORDER BY seq"
    ).fetchall()
    assert rows == [(1, "one"), (2, "two")]


# --- failures leave the mismatch PENDING ---------------------------------------------------


def test_with_cassandra_unreachable_nothing_changes_and_the_mismatch_stays_pending(
    cassandra, target, table_pair, operator, take_cassandra_down
) -> None:
    mapping = table_pair(USERS, USERS_PG)
    target.execute(
        f"INSERT INTO public.{mapping.postgres_table} (id, email, score) VALUES ('u5', 'old', 1)"
    )
    mismatch = make_mismatch(mapping, "u5", MismatchType.MISSING_IN_CASSANDRA, None, {"id": "u5"})
    take_cassandra_down()

    with pytest.raises(RepairFailed) as failure:
        repair_mismatch(mismatch, operator)

    assert failure.value.code == "cassandra_unavailable"
    assert status_for(failure.value) == 502
    assert "unreachable" in failure.value.detail
    assert target_row(target, mapping, "id = %s", "u5") is not None  # not deleted blindly
    mismatch.refresh_from_db()
    assert mismatch.resolution_status == ResolutionStatus.PENDING
    assert mismatch.resolution_notes == ""
    assert mismatch.resolved_by is None
    entry = AuditLogEntry.objects.get(reason=f"repair of mismatch {mismatch.mismatch_id}")
    assert entry.cassandra_status == StoreStatus.FAILED
    assert entry.postgres_status == StoreStatus.SKIPPED


def test_a_table_that_is_no_longer_registered_cannot_be_repaired(
    cassandra, target, table_pair, operator
) -> None:
    mapping = table_pair(USERS, USERS_PG)
    cassandra.execute(f"INSERT INTO {mapping.cassandra_table} (id, email) VALUES ('u6', 'e')")
    mismatch = make_mismatch(mapping, "u6", MismatchType.MISSING_IN_POSTGRES, {"id": "u6"})
    TableMapping.objects.filter(pk=mapping.pk).delete()

    with pytest.raises(RepairFailed) as failure:
        repair_mismatch(mismatch, operator)

    assert failure.value.code == "table_not_registered"
    assert status_for(failure.value) == 409
    assert target_row(target, mapping, "TRUE") is None
    mismatch.refresh_from_db()
    assert mismatch.resolution_status == ResolutionStatus.PENDING


def test_an_sql_error_on_the_target_leaves_the_mismatch_pending(
    cassandra, target, table_pair, operator
) -> None:
    # no primary key on the target: ON CONFLICT has nothing to conflict on
    mapping = table_pair(USERS, "id text, email text, score integer")
    cassandra.execute(f"INSERT INTO {mapping.cassandra_table} (id, email) VALUES ('u7', 'e')")
    mismatch = make_mismatch(mapping, "u7", MismatchType.MISSING_IN_POSTGRES, {"id": "u7"})

    with pytest.raises(RepairFailed) as failure:
        repair_mismatch(mismatch, operator)

    assert failure.value.code == "target_write_failed"
    assert status_for(failure.value) == 502
    assert "ON CONFLICT" in failure.value.detail
    assert target_row(target, mapping, "TRUE") is None
    mismatch.refresh_from_db()
    assert mismatch.resolution_status == ResolutionStatus.PENDING
    entry = AuditLogEntry.objects.get(reason=f"repair of mismatch {mismatch.mismatch_id}")
    assert entry.postgres_status == StoreStatus.FAILED
    assert "ON CONFLICT" in entry.postgres_error


def test_an_already_resolved_mismatch_is_not_repaired_and_names_who_resolved_it(
    cassandra, target, table_pair, operator, django_user_model
) -> None:
    mapping = table_pair(USERS, USERS_PG)
    cassandra.execute(f"INSERT INTO {mapping.cassandra_table} (id, email) VALUES ('u8', 'e')")
    mismatch = make_mismatch(mapping, "u8", MismatchType.MISSING_IN_POSTGRES, {"id": "u8"})
    bob = django_user_model.objects.create_user("bob")
    Mismatch.objects.get(pk=mismatch.pk).resolve(bob, ResolutionStatus.IGNORED, "known issue")

    with pytest.raises(RepairFailed, match="already IGNORED by bob"):
        repair_mismatch(mismatch, operator)

    assert target_row(target, mapping, "TRUE") is None


# --- the API endpoint ----------------------------------------------------------------------


def bearer(user: Any) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {issue_token(user)[1]}"}


def repairer(django_user_model: Any, name: str = "repairer") -> Any:
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user(name)
    user.user_permissions.add(Permission.objects.get(codename="repair_mismatch"))
    return user


def test_the_api_repairs_a_mismatch_for_a_user_with_the_repair_permission(
    client, cassandra, target, table_pair, django_user_model
) -> None:
    mapping = table_pair(USERS, USERS_PG)
    cassandra.execute(
        f"INSERT INTO {mapping.cassandra_table} (id, email, score) VALUES ('a1', 'api@x', 3)"
    )
    mismatch = make_mismatch(mapping, "a1", MismatchType.MISSING_IN_POSTGRES, {"id": "a1"})

    response = client.post(
        f"/reconciliation/mismatches/{mismatch.mismatch_id}/repair",
        **bearer(repairer(django_user_model)),
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["resolution_status"] == "AUTO_RESOLVED"
    assert body["resolved_by"] == "repairer"
    assert body["repair"]["action"] == "upserted"
    assert body["repair"]["after"]["email"] == "api@x"
    assert target_row(target, mapping, "id = %s", "a1")[:3] == ("a1", "api@x", 3)


def test_the_api_refuses_a_user_without_the_repair_permission(
    client, cassandra, target, table_pair, django_user_model
) -> None:
    mapping = table_pair(USERS, USERS_PG)
    cassandra.execute(f"INSERT INTO {mapping.cassandra_table} (id, email) VALUES ('a2', 'x')")
    mismatch = make_mismatch(mapping, "a2", MismatchType.MISSING_IN_POSTGRES, {"id": "a2"})
    user = django_user_model.objects.create_user("viewer")

    response = client.post(
        f"/reconciliation/mismatches/{mismatch.mismatch_id}/repair", **bearer(user)
    )

    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied"
    assert target_row(target, mapping, "TRUE") is None
    mismatch.refresh_from_db()
    assert mismatch.resolution_status == ResolutionStatus.PENDING


def test_the_api_answers_502_with_the_error_when_cassandra_is_down(
    client, cassandra, target, table_pair, django_user_model, take_cassandra_down
) -> None:
    mapping = table_pair(USERS, USERS_PG)
    mismatch = make_mismatch(mapping, "a3", MismatchType.MISSING_IN_POSTGRES, {"id": "a3"})
    take_cassandra_down()

    response = client.post(
        f"/reconciliation/mismatches/{mismatch.mismatch_id}/repair",
        **bearer(repairer(django_user_model)),
    )

    assert response.status_code == 502
    body = response.json()
    assert body["error"] == "cassandra_unavailable"
    assert "unreachable" in body["detail"]
    assert body["fields"] == {}
    mismatch.refresh_from_db()
    assert mismatch.resolution_status == ResolutionStatus.PENDING


def test_the_api_answers_404_in_json_for_an_unknown_or_malformed_id(
    client, django_user_model
) -> None:
    headers = bearer(repairer(django_user_model))

    for mismatch_id in (uuid.uuid4(), "not-a-uuid"):
        response = client.post(f"/reconciliation/mismatches/{mismatch_id}/repair", **headers)
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


def test_mismatches_found_by_a_real_job_are_repaired_and_only_real_changes_are_reported(
    cassandra, target, table_pair, operator
) -> None:
    mapping = table_pair(
        "id text PRIMARY KEY, email text, tags set<text>, balance decimal, seen_at timestamp",
        "id text PRIMARY KEY, email text, tags text[], balance numeric(12, 2), "
        "seen_at timestamptz, _cdc_operation text",
    )
    table = mapping.cassandra_table
    for key in ("k1", "k2"):
        cassandra.execute(
            f"INSERT INTO {table} (id, email, tags, balance, seen_at) VALUES "
            f"('{key}', '{key}@x', {{'b', 'a'}}, 1.10, '2025-11-25 10:00:00.5+0000')"
        )
    target.execute(
        f"INSERT INTO public.{table} VALUES "
        "('k1', 'stale@x', '{a,b}', 1.1, '2025-11-25 10:00:00.5+00', 'INSERT')"
    )
    job = run_in_process(create_job(mapping, ValidationStrategy.CHECKSUM))
    found = {m.primary_key_value: m for m in job.mismatches.all()}
    assert {k: m.mismatch_type for k, m in found.items()} == {
        "k1": MismatchType.DATA_MISMATCH,
        "k2": MismatchType.MISSING_IN_POSTGRES,
    }
    cassandra.execute(f"UPDATE {table} SET balance = 2.5 WHERE id = 'k2'")  # after detection

    unchanged = repair_mismatch(found["k1"], operator)
    changed = repair_mismatch(found["k2"], operator)

    assert unchanged.changed_columns is None
    assert changed.changed_columns == ["balance"]
    assert "changed since detection (columns: balance)" in changed.note
    rows = target.execute(f"SELECT id, email, balance FROM public.{table} ORDER BY id").fetchall()
    assert rows == [
        ("k1", "k1@x", decimal.Decimal("1.10")),
        ("k2", "k2@x", decimal.Decimal("2.50")),
    ]
    recheck = run_in_process(create_job(mapping, ValidationStrategy.CHECKSUM))
    assert recheck.mismatch_count == 0, list(
        recheck.mismatches.values("cassandra_data", "postgres_data")
    )
