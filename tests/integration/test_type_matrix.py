"""Every Cassandra type against its PostgreSQL counterparts, through a real CHECKSUM job.

Each case writes one row on both sides, as CQL and SQL literals: equal values written
differently must NOT differ, real differences MUST.
"""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from django.test import override_settings

from cdcrecon.conf import settings
from reconciliation.choices import JobStatus, MismatchType, ValidationStrategy
from reconciliation.jobs import create_job, run_in_process
from reconciliation.models import Mismatch, ReconciliationJob

U1 = "12345678-1234-5678-1234-567812345678"
U2 = "87654321-4321-8765-4321-876543218765"
TU = "50554d6e-29bb-11e5-b345-feff819cdc9f"

EQUAL, DIFFERENT = True, False

# (Cassandra type, PostgreSQL type, [(CQL literal, SQL literal, equal?)])
MATRIX = [
    (
        "text",
        "text",
        [
            ("'héllo'", "'héllo'", EQUAL),
            ("''", "''", EQUAL),
            ("'a'", "'a '", DIFFERENT),
            ("''", "NULL", DIFFERENT),  # an empty string is not NULL
            ("NULL", "NULL", EQUAL),
        ],
    ),
    ("ascii", "varchar(20)", [("'abc'", "'abc'", EQUAL), ("'abc'", "'ABC'", DIFFERENT)]),
    ("varchar", "text", [("'x y'", "'x y'", EQUAL), ("'x'", "'y'", DIFFERENT)]),
    ("tinyint", "smallint", [("7", "7", EQUAL), ("-128", "-128", EQUAL), ("7", "8", DIFFERENT)]),
    ("smallint", "integer", [("300", "300", EQUAL), ("300", "301", DIFFERENT)]),
    ("int", "bigint", [("42", "42", EQUAL), ("42", "-42", DIFFERENT)]),
    (
        "bigint",
        "numeric(20, 0)",
        [("4611686018427387904", "4611686018427387904", EQUAL), ("1", "2", DIFFERENT)],
    ),
    (
        "varint",
        "numeric",
        [
            ("1208925819614629174706177", "1208925819614629174706177", EQUAL),
            ("1208925819614629174706177", "1208925819614629174706176", DIFFERENT),
        ],
    ),
    ("counter", "bigint", None),  # counters live in counter tables: see their own test
    (
        "decimal",
        "numeric(12, 4)",
        [
            ("1.10", "1.1", EQUAL),
            ("100", "100.0000", EQUAL),
            ("0.00", "0", EQUAL),
            ("1.1", "1.11", DIFFERENT),
        ],
    ),
    (
        "float",
        "real",
        [("0.1", "0.1", EQUAL), ("3.4028235e38", "3.4028235e38", EQUAL), ("0.1", "0.2", DIFFERENT)],
    ),
    (
        "float",
        "double precision",
        # A real column copied into a double: equal as 32-bit floats.
        [("0.1", "0.1", EQUAL), ("0.1", "0.1000001", DIFFERENT)],
    ),
    (
        "double",
        "double precision",
        [
            ("0.1", "0.1", EQUAL),
            ("NaN", "'NaN'", EQUAL),
            ("Infinity", "'Infinity'", EQUAL),
            ("0.1", "0.10000000000000002", DIFFERENT),
            ("NaN", "0", DIFFERENT),
        ],
    ),
    (
        "boolean",
        "boolean",
        [("true", "true", EQUAL), ("false", "false", EQUAL), ("true", "false", DIFFERENT)],
    ),
    ("uuid", "uuid", [(U1, f"'{U1}'", EQUAL), (U1, f"'{U2}'", DIFFERENT)]),
    (
        "uuid",
        "text",
        [(U1, f"'{U1.upper()}'", EQUAL), (U1, f"'{U1}'", EQUAL), (U1, "'not-a-uuid'", DIFFERENT)],
    ),
    ("timeuuid", "uuid", [(TU, f"'{TU}'", EQUAL), (TU, f"'{U1}'", DIFFERENT)]),
    (
        "timestamp",
        "timestamptz",
        [
            ("'2025-11-25 10:00:00.123+0000'", "'2025-11-25 11:00:00.123+01'", EQUAL),
            # PostgreSQL's sub-millisecond part is cut, as Cassandra would cut it.
            ("'2025-11-25 10:00:00.123+0000'", "'2025-11-25 10:00:00.123999+00'", EQUAL),
            ("'2025-11-25 10:00:00.123+0000'", "'2025-11-25 10:00:00.124+00'", DIFFERENT),
            ("'1969-07-20 20:17:40.5+0000'", "'1969-07-20 20:17:40.5+00'", EQUAL),
        ],
    ),
    (
        "timestamp",
        "timestamp",  # without time zone: read as UTC
        [
            ("'2025-11-25 10:00:00.123+0000'", "'2025-11-25 10:00:00.1234'", EQUAL),
            ("'2025-11-25 10:00:00.000+0000'", "'2025-11-25 11:00:00'", DIFFERENT),
        ],
    ),
    (
        "date",
        "date",
        [("'2025-11-25'", "'2025-11-25'", EQUAL), ("'2025-11-25'", "'2025-11-24'", DIFFERENT)],
    ),
    (
        "time",
        "time",
        [
            ("'10:00:00.123456'", "'10:00:00.123456'", EQUAL),
            ("'10:00:00.123456789'", "'10:00:00.123456'", EQUAL),  # microseconds
            ("'10:00:00.123456'", "'10:00:00.123457'", DIFFERENT),
        ],
    ),
    (
        "blob",
        "bytea",
        [("0x00ff", "'\\x00ff'", EQUAL), ("0x", "''", EQUAL), ("0x00ff", "'\\x00fe'", DIFFERENT)],
    ),
    (
        "inet",
        "inet",
        [
            ("'10.0.0.1'", "'10.0.0.1'", EQUAL),
            ("'::1'", "'0:0::1'", EQUAL),
            ("'10.0.0.1'", "'10.0.0.2'", DIFFERENT),
        ],
    ),
    (
        "inet",
        "text",
        [("'10.0.0.1'", "'10.0.0.1'", EQUAL), ("'10.0.0.1'", "'10.0.0.01x'", DIFFERENT)],
    ),
    (
        "list<int>",
        "integer[]",
        [
            ("[1, 2, 3]", "ARRAY[1, 2, 3]", EQUAL),
            ("[1, 2, 3]", "ARRAY[3, 2, 1]", DIFFERENT),
            ("[]", "NULL", EQUAL),  # an empty collection is NULL
            ("[]", "'{}'", EQUAL),
            ("[]", "ARRAY[0]", DIFFERENT),
        ],
    ),
    (
        "list<text>",
        "jsonb",
        [
            ("['a', 'b']", """'["a", "b"]'""", EQUAL),
            ("['a', 'b']", """'["b", "a"]'""", DIFFERENT),
            ("[]", "'[]'", EQUAL),
            ("NULL", "'null'", EQUAL),
        ],
    ),
    (
        "set<int>",
        "integer[]",
        [
            ("{3, 1, 2}", "ARRAY[2, 3, 1]", EQUAL),
            ("{1, 2}", "ARRAY[1, 2, 3]", DIFFERENT),
            ("{}", "NULL", EQUAL),
        ],
    ),
    (
        "set<uuid>",
        "jsonb",
        [
            (f"{{{U1}, {U2}}}", f"""'["{U2}", "{U1.upper()}"]'""", EQUAL),
            (f"{{{U1}}}", f"""'["{U2}"]'""", DIFFERENT),
            ("{}", "'[]'", EQUAL),
        ],
    ),
    (
        "map<text, int>",
        "jsonb",
        [
            ("{'a': 1, 'b': 2}", """'{"b": 2, "a": 1}'""", EQUAL),
            ("{'a': 1}", """'{"a": 2}'""", DIFFERENT),
            ("{'a': 1}", """'{"a": 1, "b": null}'""", DIFFERENT),
            ("{}", "'{}'", EQUAL),
        ],
    ),
    (
        "map<int, decimal>",
        "jsonb",
        [
            ("{1: 1.10, 2: 3}", """'{"2": 3.0, "1": 1.1}'""", EQUAL),
            ("{1: 1.1}", """'{"1": 1.2}'""", DIFFERENT),
        ],
    ),
    (
        "map<timestamp, boolean>",
        "jsonb",
        [
            (
                "{'2025-01-01 00:00:00+0000': true}",
                """'{"2025-01-01T00:00:00.000Z": true}'""",
                EQUAL,
            ),
            (
                "{'2025-01-01 00:00:00+0000': true}",
                """'{"2025-01-01T00:00:00.000Z": false}'""",
                DIFFERENT,
            ),
        ],
    ),
    (
        "frozen<list<frozen<map<text, frozen<set<int>>>>>>",
        "jsonb",
        [
            ("[{'x': {2, 1}}, {'y': {3}}]", """'[{"x": [1, 2]}, {"y": [3]}]'""", EQUAL),
            ("[{'x': {2, 1}}]", """'[{"x": [1, 3]}]'""", DIFFERENT),
        ],
    ),
    (
        "tuple<int, text, boolean>",
        "jsonb",
        [
            ("(1, 'a', true)", """'[1, "a", true]'""", EQUAL),
            ("(1, 'a', true)", """'[1, "a", false]'""", DIFFERENT),
        ],
    ),
    (
        "duration",
        "interval",
        [
            ("1mo2d3h", "'1 mon 2 days 03:00:00'", EQUAL),
            ("25h", "'25 hours'", EQUAL),
            ("-1y2mo", "'-1 year -2 mons'", EQUAL),
            ("1mo", "'30 days'", DIFFERENT),  # months and days are kept apart
            ("25h", "'1 day 1 hour'", DIFFERENT),  # so are days and time
            ("1d", "'24 hours'", DIFFERENT),
            ("1us", "'00:00:00.000001'", EQUAL),
            ("1mo1d", "'1 mon 2 days'", DIFFERENT),
        ],
    ),
    (
        "vector<float, 3>",
        "real[]",
        [
            ("[0.1, 0.2, 0.3]", "ARRAY[0.1, 0.2, 0.3]", EQUAL),
            ("[0.1, 0.2, 0.3]", "ARRAY[0.1, 0.2, 0.4]", DIFFERENT),
        ],
    ),
]


def run_checksum(mapping, recheck_delay: float = 0.0) -> tuple[set[str], ReconciliationJob]:
    job = create_job(mapping, ValidationStrategy.CHECKSUM)
    changed = dataclasses.replace(settings.reconciliation, recheck_delay_seconds=recheck_delay)
    with override_settings(RECONCILIATION=changed):
        run_in_process(job)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error_message
    # The keys this job found (a difference keeps the job that first found it as ``job``).
    found = Mismatch.objects.filter(findings__job=job)
    kinds = dict(found.values_list("primary_key_value", "mismatch_type"))
    assert set(kinds.values()) <= {MismatchType.DATA_MISMATCH}, kinds
    return set(kinds), job


def write_cases(cassandra, target, table: str, cases) -> set[str]:
    different = set()
    for index, (cql, pg, equal) in enumerate(cases):
        key = f"case-{index}"
        cassandra.execute(f"INSERT INTO {table} (id, v) VALUES ('{key}', {cql})")
        target.execute(f"INSERT INTO public.{table} (id, v) VALUES ('{key}', {pg})")  # noqa: S608
        if not equal:
            different.add(key)
    return different


@pytest.mark.parametrize(
    ("cql_type", "pg_type", "cases"),
    [m for m in MATRIX if m[2] is not None],
    ids=[f"{m[0]}-{m[1]}" for m in MATRIX if m[2] is not None],
)
def test_equal_values_match_and_different_values_differ(
    cassandra, target, table_pair, cql_type, pg_type, cases
) -> None:
    mapping = table_pair(f"id text PRIMARY KEY, v {cql_type}", f"id text PRIMARY KEY, v {pg_type}")
    different = write_cases(cassandra, target, mapping.name, cases)

    found, job = run_checksum(mapping)
    # Re-checked, every difference is read again by key from both stores.
    rechecked, again = run_checksum(mapping, recheck_delay=0.01)

    assert found == different
    assert job.keys_examined == len(cases)
    assert rechecked == different
    assert again.transient_count == 0


def test_user_defined_types_match_jsonb_field_by_field(cassandra, target, table_pair) -> None:
    udt = f"address_{uuid.uuid4().hex[:8]}"
    cassandra.execute(f"CREATE TYPE {udt} (street text, zip int, since timestamp)")
    try:
        mapping = table_pair(
            f"id text PRIMARY KEY, v frozen<{udt}>", "id text PRIMARY KEY, v jsonb"
        )
        different = write_cases(
            cassandra,
            target,
            mapping.name,
            [
                (
                    "{street: 'Main St', zip: 1000, since: '2020-01-01 00:00:00+0000'}",
                    """'{"zip": 1000, "street": "Main St", "since": "2020-01-01T00:00:00Z"}'""",
                    EQUAL,
                ),
                ("{street: 'Main St'}", """'{"street": "Main St"}'""", EQUAL),
                (
                    "{street: 'Main St', zip: 1000}",
                    """'{"street": "Main St", "zip": 1001}'""",
                    DIFFERENT,
                ),
                ("{street: 'Main St'}", """'{"street": "Main St", "extra": 1}'""", DIFFERENT),
            ],
        )

        found, _ = run_checksum(mapping)
        rechecked, again = run_checksum(mapping, recheck_delay=0.01)

        assert found == different
        assert rechecked == different and again.transient_count == 0
    finally:
        cassandra.execute(f"DROP TABLE IF EXISTS {mapping.name}")
        cassandra.execute(f"DROP TYPE IF EXISTS {udt}")


def test_counters_match_integer_columns(cassandra, target, table_pair) -> None:
    mapping = table_pair("id text PRIMARY KEY, v counter", "id text PRIMARY KEY, v bigint")
    cassandra.execute(f"UPDATE {mapping.name} SET v = v + 5 WHERE id = 'same'")
    cassandra.execute(f"UPDATE {mapping.name} SET v = v + 5 WHERE id = 'lagging'")
    target.execute(f"INSERT INTO public.{mapping.name} VALUES ('same', 5), ('lagging', 4)")

    found, _ = run_checksum(mapping)

    assert found == {"lagging"}


def test_composite_keys_of_mixed_types_pair_partition_and_clustering_columns(
    cassandra, target, table_pair
) -> None:
    mapping = table_pair(
        "tenant uuid, day date, at timestamp, seq int, note text, "
        "PRIMARY KEY ((tenant, day), at, seq)",
        "tenant uuid, day date, at timestamptz, seq int, note text, "
        "PRIMARY KEY (tenant, day, at, seq)",
    )
    table = mapping.name
    rows = [
        (U1, "2025-11-25", "2025-11-25 10:00:00.001", 1, "a"),
        (U1, "2025-11-25", "2025-11-25 10:00:00.002", 1, "b"),
        (U1, "2025-11-26", "2025-11-26 10:00:00.001", 2, "c"),
        (U2, "2025-11-25", "2025-11-25 10:00:00.001", 1, "d"),
    ]
    for tenant, day, at, seq, note in rows:
        cassandra.execute(
            f"INSERT INTO {table} (tenant, day, at, seq, note) "
            f"VALUES ({tenant}, '{day}', '{at}+0000', {seq}, '{note}')"
        )
        # The target keeps sub-millisecond digits Cassandra never had: still the same key.
        target.execute(
            f"INSERT INTO public.{table} (tenant, day, at, seq, note) "  # noqa: S608
            f"VALUES ('{tenant}', '{day}', '{at}4+00', {seq}, '{note}')"
        )
    target.execute(f"UPDATE public.{table} SET note = 'changed' WHERE note = 'c'")  # noqa: S608

    found, job = run_checksum(mapping)

    assert found == {f'["{U1}","2025-11-26","2025-11-26T10:00:00.001Z","2"]'}
    assert job.keys_examined == 4
    mismatch = Mismatch.objects.get(job=job)
    assert mismatch.cassandra_data == {
        "tenant": U1,
        "day": "2025-11-26",
        "at": "2025-11-26T10:00:00.001Z",
        "seq": 2,
        "note": "c",
    }
    assert mismatch.postgres_data["note"] == "changed"
