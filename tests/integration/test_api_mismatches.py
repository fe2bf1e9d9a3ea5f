"""GET /reconciliation/mismatches: the guide's fields, filters, paging, and a fixed query count."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from reconciliation.choices import MismatchType, ResolutionStatus
from reconciliation.presenters import iso
from tests.factories import JobFactory, MismatchFactory

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2025, 11, 25, 10, 0, tzinfo=dt.UTC)


def test_it_lists_mismatches_in_the_guides_envelope_with_both_sides_rows(reader) -> None:
    job = JobFactory(table_name="users")
    mismatch = MismatchFactory(job=job, primary_key_value="user-123")

    response = reader.get("/reconciliation/mismatches")

    assert response.status_code == 200
    assert response.json() == {
        "mismatches": [
            {
                "mismatch_id": str(mismatch.mismatch_id),
                "job_id": str(job.job_id),
                "table_name": "users",
                "primary_key_value": "user-123",
                "mismatch_type": "DATA_MISMATCH",
                "cassandra_data": {"id": "user-123", "email": "old@example.com"},
                "postgres_data": {"id": "user-123", "email": "new@example.com"},
                "resolution_status": "PENDING",
                "first_seen_at": iso(mismatch.first_seen_at),
                "last_seen_at": iso(mismatch.last_seen_at),
                "times_seen": 1,
                "last_job_id": None,
                "reappeared_at": None,
                "source_write_time": None,
                "source_ttl_seconds": None,
                "recheck_after": None,
            }
        ],
        "total": 1,
        "limit": 1000,
        "offset": 0,
    }


def test_a_row_missing_on_one_side_has_null_data_for_that_side(reader) -> None:
    MismatchFactory(mismatch_type=MismatchType.MISSING_IN_POSTGRES, postgres_data=None)

    (row,) = reader.get("/reconciliation/mismatches").json()["mismatches"]

    assert row["postgres_data"] is None
    assert row["cassandra_data"]["email"] == "old@example.com"


def test_it_filters_by_table_type_and_resolution_status(reader) -> None:
    users, orders = JobFactory(table_name="users"), JobFactory(table_name="orders")
    wanted = MismatchFactory(job=users, mismatch_type=MismatchType.MISSING_IN_CASSANDRA)
    MismatchFactory(job=users, mismatch_type=MismatchType.DATA_MISMATCH)
    MismatchFactory(job=orders, mismatch_type=MismatchType.MISSING_IN_CASSANDRA)
    MismatchFactory(
        job=users,
        mismatch_type=MismatchType.MISSING_IN_CASSANDRA,
        resolution_status=ResolutionStatus.IGNORED,
    )

    body = reader.get(
        "/reconciliation/mismatches",
        {"table": "users", "mismatch_type": "MISSING_IN_CASSANDRA", "resolution_status": "PENDING"},
    ).json()

    assert body["total"] == 1
    assert [m["mismatch_id"] for m in body["mismatches"]] == [str(wanted.mismatch_id)]


def test_it_filters_by_job(reader) -> None:
    job = JobFactory()
    mine = MismatchFactory.create_batch(2, job=job)
    MismatchFactory()

    body = reader.get("/reconciliation/mismatches", {"job_id": str(job.job_id)}).json()

    assert {m["mismatch_id"] for m in body["mismatches"]} == {str(m.mismatch_id) for m in mine}


def test_mismatches_come_newest_first_and_page_stably(reader) -> None:
    rows = [MismatchFactory(detected_at=T0 + dt.timedelta(seconds=i)) for i in range(5)]
    newest_first = [str(m.mismatch_id) for m in reversed(rows)]

    pages = [
        reader.get("/reconciliation/mismatches", {"limit": 2, "offset": offset}).json()
        for offset in (0, 2, 4)
    ]

    assert [m["mismatch_id"] for page in pages for m in page["mismatches"]] == newest_first
    assert [(p["total"], p["limit"], p["offset"]) for p in pages] == [
        (5, 2, 0),
        (5, 2, 2),
        (5, 2, 4),
    ]


def test_the_limit_defaults_to_1000_and_is_capped_at_10000(reader) -> None:
    MismatchFactory()

    assert reader.get("/reconciliation/mismatches").json()["limit"] == 1000
    assert reader.get("/reconciliation/mismatches", {"limit": 10000}).json()["limit"] == 10000
    over = reader.get("/reconciliation/mismatches", {"limit": 10001})
    assert over.status_code == 400
    assert "limit" in over.json()["fields"]


def test_an_unknown_enum_value_is_a_400_naming_the_parameter(reader) -> None:
    response = reader.get("/reconciliation/mismatches", {"mismatch_type": "SOMETHING_ELSE"})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert set(response.json()["fields"]) == {"mismatch_type"}


def _queries_for_a_page(reader) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = reader.get("/reconciliation/mismatches")
    assert response.status_code == 200
    return len(queries)


def test_a_page_costs_the_same_few_queries_however_many_rows_and_jobs_it_has(reader) -> None:
    MismatchFactory.create_batch(2)
    small = _queries_for_a_page(reader)
    MismatchFactory.create_batch(40)  # 40 more jobs too: no query per job or per row
    large = _queries_for_a_page(reader)

    assert small == large
    assert large <= 5  # token, permissions, count, page


def test_the_page_query_uses_the_detected_at_index_not_a_sort_of_the_table(reader) -> None:
    MismatchFactory.create_batch(3)
    with CaptureQueriesContext(connection) as queries:
        reader.get("/reconciliation/mismatches")
    page_sql = next(
        q["sql"]
        for q in queries.captured_queries
        if "LIMIT" in q["sql"] and "reconciliation_mismatch" in q["sql"]
    )
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {page_sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "mismatch_detected" in plan, plan
