"""The mismatch list's ``total`` stays exact without a COUNT(*): the trigger-kept
per-(table, type, status) counts always equal COUNT(*), whatever writes the rows."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext

from reconciliation.choices import MismatchType, ResolutionStatus
from reconciliation.models import Mismatch, MismatchCount
from tests.factories import JobFactory, MismatchFactory

TABLES = ["users", "orders"]


def counted() -> dict[tuple[str, str, str], int]:
    return {
        (c.table_name, c.mismatch_type, c.resolution_status): c.count
        for c in MismatchCount.objects.all()
        if c.count
    }


def actual() -> dict[tuple[str, str, str], int]:
    rows = Mismatch.objects.values("table_name", "mismatch_type", "resolution_status").annotate(
        n=Count("mismatch_id")
    )
    return {(r["table_name"], r["mismatch_type"], r["resolution_status"]): r["n"] for r in rows}


def plant(table: str, n: int, **fields) -> list[Mismatch]:
    job = JobFactory(table_name=table)
    return Mismatch.objects.bulk_create(
        [
            Mismatch(
                job=job,
                table_name=table,
                primary_key_value=f"{table}-{i}",
                mismatch_type=list(MismatchType)[i % 3],
                **fields,
            )
            for i in range(n)
        ]
    )


@pytest.mark.django_db
def test_counts_follow_inserts_updates_and_deletes() -> None:
    plant("users", 30)
    plant("orders", 7)
    assert counted() == actual()

    # A status change, a type change, a bulk update, a no-op update and deletes.
    first = Mismatch.objects.filter(table_name="users").first()
    first.resolution_status = ResolutionStatus.IGNORED
    first.save()
    Mismatch.objects.filter(table_name="orders", mismatch_type=MismatchType.DATA_MISMATCH).update(
        mismatch_type=MismatchType.MISSING_IN_POSTGRES
    )
    Mismatch.objects.filter(pk=first.pk).update(resolution_notes="just a note")
    four = Mismatch.objects.filter(
        table_name="users", mismatch_type=MismatchType.MISSING_IN_CASSANDRA
    ).values_list("pk", flat=True)[:4]
    Mismatch.objects.filter(pk__in=list(four)).delete()
    Mismatch.objects.filter(table_name="users", resolution_status="PENDING").update(
        resolution_status=ResolutionStatus.MANUAL_RESOLVED
    )

    assert counted() == actual()
    assert sum(counted().values()) == Mismatch.objects.count()


@pytest.mark.django_db(transaction=True)
def test_counts_are_emptied_by_a_truncate() -> None:
    plant("users", 5)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE reconciliation_jobfinding, reconciliation_mismatch")

    assert MismatchCount.objects.total() == 0
    plant("users", 3)
    assert MismatchCount.objects.total(table_name="users") == 3


@pytest.mark.django_db
def test_the_api_total_is_exact_under_every_filter_combination(reader) -> None:
    plant("users", 20)
    plant("orders", 11, resolution_status=ResolutionStatus.IGNORED)
    six = list(Mismatch.objects.filter(table_name="users").values_list("pk", flat=True)[:6])
    Mismatch.objects.filter(pk__in=six).update(resolution_status=ResolutionStatus.AUTO_RESOLVED)
    dated = MismatchFactory(
        job=JobFactory(table_name="users"), detected_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    )

    choices = {
        "table": [None, *TABLES],
        "mismatch_type": [None, *MismatchType.values],
        "resolution_status": [None, *ResolutionStatus.values],
    }
    for table, kind, status in itertools.product(*choices.values()):
        params = {
            k: v
            for k, v in {"table": table, "mismatch_type": kind, "resolution_status": status}.items()
            if v is not None
        }
        expected = Mismatch.objects.filter(
            **{
                f: v
                for f, v in {
                    "table_name": table,
                    "mismatch_type": kind,
                    "resolution_status": status,
                }.items()
                if v is not None
            }
        ).count()
        body = reader.get("/reconciliation/mismatches", {**params, "limit": 1}).json()
        assert body["total"] == expected, params

    # Filters the counts do not cover fall back to counting the filtered rows.
    body = reader.get("/reconciliation/mismatches", {"detected_before": "2020-01-02"}).json()
    assert body["total"] == 1
    body = reader.get("/reconciliation/mismatches", {"job_id": str(dated.job_id)}).json()
    assert body["total"] == 1


@pytest.mark.django_db
def test_the_common_filters_need_no_count_of_the_mismatch_table(reader) -> None:
    plant("users", 5)

    with CaptureQueriesContext(connection) as queries:
        body = reader.get(
            "/reconciliation/mismatches", {"table": "users", "resolution_status": "PENDING"}
        ).json()

    assert body["total"] == 5
    counts = [
        q["sql"]
        for q in queries.captured_queries
        if "COUNT(" in q["sql"].upper() and 'FROM "reconciliation_mismatch"' in q["sql"]
    ]
    assert counts == []


@pytest.mark.django_db
def test_deep_pages_return_the_same_rows_in_the_same_order(reader) -> None:
    # Ties on detected_at are broken by mismatch_id, as the list promises.
    job = JobFactory(table_name="users")
    stamps = [dt.datetime(2025, 11, 25, 10, i // 3, tzinfo=dt.UTC) for i in range(30)]
    for i, stamp in enumerate(stamps):
        MismatchFactory(job=job, primary_key_value=f"k{i}", detected_at=stamp)
    expected = [
        str(pk)
        for pk in Mismatch.objects.order_by("-detected_at", "mismatch_id").values_list(
            "mismatch_id", flat=True
        )
    ]

    pages = []
    for offset in range(0, 30, 3):  # offsets from 15 on take the deferred join
        body = reader.get("/reconciliation/mismatches", {"limit": 3, "offset": offset}).json()
        assert body["total"] == 30
        pages += [m["mismatch_id"] for m in body["mismatches"]]
    deep = reader.get(
        "/reconciliation/mismatches", {"limit": 3, "offset": 27, "table": "users"}
    ).json()

    assert pages == expected
    assert [m["mismatch_id"] for m in deep["mismatches"]] == expected[27:]
    assert deep["mismatches"][0]["cassandra_data"]["email"] == "old@example.com"
