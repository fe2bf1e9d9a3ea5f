"""A value the reader cannot convert is its row's DATA_MISMATCH, shown as written; the job
completes and counts such values.  Real Cassandra and PostgreSQL."""

from __future__ import annotations

import pytest

from reconciliation.choices import JobStatus, MismatchType, ValidationStrategy
from reconciliation.jobs import create_job, run_in_process
from reconciliation.models import Mismatch

# (CQL type, PostgreSQL type, a Cassandra literal, an unreadable target literal, as shown)
CASES = [
    (
        "timestamp",
        "timestamptz",
        "'2025-01-01 00:00:00+0000'",
        "'infinity'",
        "<invalid 'infinity'>",
    ),
    (
        "timestamp",
        "timestamp",
        "'2025-01-01 00:00:00+0000'",
        "'-infinity'",
        "<invalid '-infinity'>",
    ),
    ("date", "date", "'2025-01-01'", "'infinity'", "<invalid 'infinity'>"),
    ("decimal", "numeric", "1.5", "'NaN'", "NaN"),
    (
        "uuid",
        "text",
        "12345678-1234-5678-1234-567812345678",
        "'not-a-uuid'",
        "<invalid 'not-a-uuid'>",
    ),
    ("list<int>", "jsonb", "[1, 2]", """'{"a": 1}'""", "<invalid {'a': 1}>"),
    ("int", "text", "5", "'five'", "<invalid 'five'>"),
    (
        "timestamp",
        "text",
        "'2025-01-01 00:00:00+0000'",
        "'yesterday-ish'",
        "<invalid 'yesterday-ish'>",
    ),
]


@pytest.mark.parametrize(
    ("cql_type", "pg_type", "cql", "pg", "shown"),
    CASES,
    ids=[f"{c[0]}-{c[1]}-{c[3]}" for c in CASES],
)
def test_an_unreadable_target_value_is_one_row_difference_not_a_failed_job(
    cassandra, target, table_pair, cql_type, pg_type, cql, pg, shown
) -> None:
    mapping = table_pair(f"id int PRIMARY KEY, v {cql_type}", f"id int PRIMARY KEY, v {pg_type}")
    table = mapping.name
    for i in range(4):
        cassandra.execute(f"INSERT INTO {table} (id, v) VALUES ({i}, {cql})")
    target.execute(
        f"INSERT INTO public.{table} (id, v) VALUES (0, {cql.replace('[', 'ARRAY[') if pg_type.endswith('[]') else None}), (1, {pg}), (2, {pg})".replace(
            "None", "NULL"
        )
    )
    # Row 0 differs too (NULL), row 3 is missing: the unreadable rows are just two more.
    # Row 4 is NULL on both sides: equal.
    cassandra.execute(f"INSERT INTO {table} (id) VALUES (4)")
    target.execute(f"INSERT INTO public.{table} (id) VALUES (4)")

    job = create_job(mapping, ValidationStrategy.CHECKSUM)
    run_in_process(job)
    job.refresh_from_db()

    assert job.status == JobStatus.COMPLETED, job.error_message
    kinds = dict(Mismatch.objects.filter(job=job).values_list("primary_key_value", "mismatch_type"))
    assert kinds == {
        "0": MismatchType.DATA_MISMATCH,
        "1": MismatchType.DATA_MISMATCH,
        "2": MismatchType.DATA_MISMATCH,
        "3": MismatchType.MISSING_IN_POSTGRES,
    }
    assert Mismatch.objects.get(job=job, primary_key_value="1").postgres_data["v"] == shown
    data = list(Mismatch.objects.filter(job=job).values_list("cassandra_data", "postgres_data"))
    assert job.unreadable_value_count == (0 if shown == "NaN" else 2), data


def test_values_past_year_9999_on_both_sides_are_read_and_compared(
    cassandra, target, table_pair
) -> None:
    mapping = table_pair(
        "id int PRIMARY KEY, at timestamp, day date",
        "id int PRIMARY KEY, at timestamptz, day date",
    )
    table = mapping.name
    cassandra.execute(
        f"INSERT INTO {table} (id, at, day) VALUES (1, 253402300800000, '2025-01-01')"
    )
    cassandra.execute(
        f"INSERT INTO {table} (id, at, day) VALUES (2, 253402300800000, '2025-01-01')"
    )
    target.execute(
        f"INSERT INTO public.{table} VALUES (1, '10000-01-01 00:00:00+00', '2025-01-01'), "
        f"(2, '10000-01-01 00:00:00.001+00', '2025-01-01')"
    )

    job = create_job(mapping, ValidationStrategy.CHECKSUM)
    run_in_process(job)
    job.refresh_from_db()

    assert job.status == JobStatus.COMPLETED, job.error_message
    kinds = dict(Mismatch.objects.filter(job=job).values_list("primary_key_value", "mismatch_type"))
    assert kinds == {"2": MismatchType.DATA_MISMATCH}
