"""One key equality on every path: the CHECKSUM merge, SAMPLE's lookups, the transient
re-check and ``recheck_keys`` find "the same row" by the same rule, however the target
writes an equal key.  Real Cassandra and PostgreSQL."""

from __future__ import annotations

import dataclasses
import decimal
from typing import Any

import pytest
from django.test import override_settings

from cdcrecon.conf import settings
from reconciliation.choices import JobStatus, MismatchType, ValidationStrategy
from reconciliation.connections import cassandra_session, consistency_level, target_connection
from reconciliation.engine import Options, recheck_keys
from reconciliation.jobs import build_parameters, create_job, run_in_process
from reconciliation.models import JobFinding, ReconciliationJob

U = [
    "12345678-1234-5678-1234-567812345678",
    "87654321-4321-8765-4321-876543218765",
    "0f0e0d0c-0b0a-0908-0706-050403020100",
    "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    "deadbeef-0000-1111-2222-333344445555",
    "01234567-89ab-cdef-0123-456789abcdef",
]


def run(
    mapping: Any, strategy: str, recheck_delay: float = 0.0, **options: Any
) -> ReconciliationJob:
    job = create_job(mapping, strategy, parameters=build_parameters(strategy, **options))
    changed = dataclasses.replace(settings.reconciliation, recheck_delay_seconds=recheck_delay)
    with override_settings(RECONCILIATION=changed):
        run_in_process(job)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error_message
    return job


def found(job: ReconciliationJob) -> dict[str, str]:
    """What ``job`` found (its findings: the ledger keeps one difference per key across runs)."""
    findings = JobFinding.objects.filter(job=job)
    return dict(findings.values_list("mismatch__primary_key_value", "mismatch_type"))


def rechecked(mapping: Any, keys: list[str]) -> dict[str, str]:
    options = Options(consistency=consistency_level())
    results = recheck_keys(mapping.spec, cassandra_session(), target_connection, options, keys)
    return {k: r.mismatch_type for k, r in zip(keys, results, strict=True) if r is not None}


def test_uuid_keys_held_as_text_in_other_spellings_are_the_same_rows_on_every_path(
    cassandra, target, table_pair
) -> None:
    mapping = table_pair("id uuid PRIMARY KEY, v int", "id text PRIMARY KEY, v int")
    table = mapping.name
    spellings = [
        U[0].upper(),
        "{" + U[1] + "}",
        U[2].replace("-", ""),
        "urn:uuid:" + U[3],
        U[4].upper(),  # its value differs
    ]
    for i, key in enumerate(spellings):
        cassandra.execute(f"INSERT INTO {table} (id, v) VALUES ({U[i]}, {i})")
        target.execute(
            f"INSERT INTO public.{table} (id, v) VALUES (%s, %s)", (key, 99 if i == 4 else i)
        )
    cassandra.execute(f"INSERT INTO {table} (id, v) VALUES ({U[5]}, 5)")  # only in Cassandra
    only_target = "FFFFFFFF-0000-0000-0000-000000000001"
    target.execute(f"INSERT INTO public.{table} (id, v) VALUES (%s, 6)", (only_target,))
    expected = {
        U[4]: MismatchType.DATA_MISMATCH,
        U[5]: MismatchType.MISSING_IN_POSTGRES,
        only_target.lower(): MismatchType.MISSING_IN_CASSANDRA,
    }

    assert found(run(mapping, ValidationStrategy.CHECKSUM)) == expected
    # The default configuration re-checks every difference by key: nothing is lost.
    again = run(mapping, ValidationStrategy.CHECKSUM, recheck_delay=0.01)
    assert found(again) == expected and again.transient_count == 0
    # SAMPLE's random path looks keys up on both sides: it finds the rows that are there.
    sampled = run(mapping, ValidationStrategy.SAMPLE, recheck_delay=0.01, sample_size=3)
    assert set(found(sampled).items()) <= set(expected.items())
    assert rechecked(mapping, [*U, only_target.lower()]) == expected


def test_decimal_partition_keys_of_any_scale_pair_with_the_same_number(
    cassandra, target, table_pair
) -> None:
    mapping = table_pair(
        "k decimal, c decimal, v text, PRIMARY KEY (k, c)",
        "k numeric, c numeric, v text, PRIMARY KEY (k, c)",
    )
    table = mapping.name
    rows = [
        ("1.10", "2.50", "1.1", "2.5"),
        ("12.3E+7", "0", "123000000", "0.000"),
        ("7", "-1.0", "7.0000", "-1"),
        ("0.5", "3", "0.50", "3.0"),
    ]
    for cql_k, cql_c, pg_k, pg_c in rows:
        cassandra.execute(f"INSERT INTO {table} (k, c, v) VALUES ({cql_k}, {cql_c}, 'x')")
        target.execute(f"INSERT INTO public.{table} (k, c, v) VALUES ({pg_k}, {pg_c}, 'x')")
    target.execute(f"UPDATE public.{table} SET v = 'changed' WHERE k = 0.5")
    expected = {'["0.5","3"]': MismatchType.DATA_MISMATCH}

    job = run(mapping, ValidationStrategy.CHECKSUM)
    assert found(job) == expected and job.keys_examined == 4
    again = run(mapping, ValidationStrategy.CHECKSUM, recheck_delay=0.01)
    assert found(again) == expected and again.transient_count == 0
    keys = ['["1.1","2.5"]', '["123000000","0"]', '["7","-1"]', '["0.5","3"]']
    assert rechecked(mapping, keys) == expected


# (CQL key type, PostgreSQL type, [(CQL literal, SQL literal of an equal key)])
KEY_TYPES = [
    ("text", "text", [("'a'", "'a'"), ("'é'", "'é'")]),
    ("int", "bigint", [("1", "1"), ("-5", "-5")]),
    ("bigint", "numeric", [("9000000000", "9000000000.000")]),
    ("varint", "numeric", [("123456789012345678901234567890", "123456789012345678901234567890")]),
    ("smallint", "integer", [("3", "3")]),
    ("tinyint", "smallint", [("-3", "-3")]),
    ("double", "double precision", [("0.1", "0.1"), ("-0.0", "0.0")]),
    ("float", "real", [("0.1", "0.1"), ("1e10", "1e10")]),
    ("boolean", "boolean", [("true", "true"), ("false", "false")]),
    (
        "timestamp",
        "timestamptz",
        [("'2025-01-01 10:00:00.123+0000'", "'2025-01-01 11:00:00.123456+01'")],
    ),
    ("timestamp", "timestamp", [("'2025-01-01 10:00:00.123+0000'", "'2025-01-01 10:00:00.1239'")]),
    ("date", "date", [("'2025-01-01'", "'2025-01-01'")]),
    ("time", "time", [("'10:00:00.123456'", "'10:00:00.123456'")]),
    (
        "timeuuid",
        "uuid",
        [("50554d6e-29bb-11e5-b345-feff819cdc9f", "'50554D6E-29BB-11E5-B345-FEFF819CDC9F'")],
    ),
    ("blob", "bytea", [("0xcafe", "'\\xCAFE'")]),
    ("inet", "inet", [("'10.0.0.1'", "'10.0.0.1/32'"), ("'::1'", "'0:0:0:0:0:0:0:1'")]),
    ("inet", "text", [("'10.0.0.1'", "'10.0.0.1'")]),
    ("frozen<list<int>>", "jsonb", [("[1, 2]", "'[1, 2]'")]),
    ("frozen<set<text>>", "text[]", [("{'b', 'a'}", "ARRAY['a', 'b']")]),
    ("frozen<map<text, int>>", "jsonb", [("{'x': 1}", """'{"x": 1}'""")]),
    ("frozen<tuple<int, text>>", "jsonb", [("(1, 'a')", """'[1, "a"]'""")]),
]


@pytest.mark.parametrize(
    ("cql_type", "pg_type", "keys"), KEY_TYPES, ids=[f"{c}-{p}" for c, p, _ in KEY_TYPES]
)
def test_every_key_type_pairs_equal_keys_on_every_path(
    cassandra, target, table_pair, cql_type, pg_type, keys
) -> None:
    mapping = table_pair(
        f"k {cql_type}, n int, v int, PRIMARY KEY (k, n)",
        f"k {pg_type}, n int, v int",
    )
    table = mapping.name
    for cql, pg in keys:
        for n in (1, 2):
            cassandra.execute(f"INSERT INTO {table} (k, n, v) VALUES ({cql}, {n}, 0)")
            target.execute(f"INSERT INTO public.{table} (k, n, v) VALUES ({pg}, {n}, {n - 1})")

    job = run(mapping, ValidationStrategy.CHECKSUM, recheck_delay=0.01)
    differing = found(job)

    # Only the (key, n=2) rows differ, as DATA_MISMATCH: each equal key paired.
    assert len(differing) == len(keys), differing
    assert set(differing.values()) == {MismatchType.DATA_MISMATCH}
    assert job.keys_examined == 2 * len(keys) and job.transient_count == 0
    assert rechecked(mapping, list(differing)) == differing
    equal_keys = [k.replace(',"2"]', ',"1"]') for k in differing]
    assert rechecked(mapping, equal_keys) == {}


# -- repair and erasure find the same row -------------------------------------------------------


def test_repair_updates_the_row_the_target_keys_in_another_spelling(
    cassandra, target, table_pair, django_user_model
) -> None:
    from reconciliation.repair.manual import repair_mismatch
    from tests.integration.test_repair import make_mismatch

    mapping = table_pair("id uuid PRIMARY KEY, v int", "id text PRIMARY KEY, v int")
    cassandra.execute(f"INSERT INTO {mapping.name} (id, v) VALUES ({U[0]}, 1)")
    target.execute(f"INSERT INTO public.{mapping.name} (id, v) VALUES (%s, 2)", (U[0].upper(),))
    mismatch = make_mismatch(
        mapping, U[0], MismatchType.DATA_MISMATCH, {"id": U[0], "v": 1}, {"id": U[0], "v": 2}
    )

    repair_mismatch(mismatch, django_user_model.objects.create_user("op", password="pw"))

    # The existing row was updated (not a second row added in canonical spelling).
    assert target.execute(f"SELECT id, v FROM public.{mapping.name}").fetchall() == [
        (U[0].upper(), 1)
    ]


def test_erasure_removes_every_equal_spelling_of_the_key_in_both_stores(
    cassandra, target, table_pair
) -> None:
    from tests.integration.erasure.support import client_for, url, user_with

    api = client_for(user_with("dpo", "erase_record"))
    mapping = table_pair(
        "k decimal, id uuid, v int, PRIMARY KEY (k, id)", "k numeric, id text, v int"
    )
    cassandra.execute(f"INSERT INTO {mapping.name} (k, id, v) VALUES (1.10, {U[0]}, 1)")
    cassandra.execute(f"INSERT INTO {mapping.name} (k, id, v) VALUES (2, {U[0]}, 1)")
    target.execute(
        f"INSERT INTO public.{mapping.name} VALUES (1.100, %s, 1), (2, %s, 1)",
        ("{" + U[0].upper() + "}", U[0]),
    )

    response = api.delete(url(mapping, f'["1.1","{U[0]}"]'), {"reason": "t-1"}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["cassandra"]["status"], body["postgres"]["status"]) == ("SUCCESS", "SUCCESS")
    assert [r["k"] for r in cassandra.execute(f"SELECT k FROM {mapping.name}")] == [
        decimal.Decimal("2")
    ]
    assert target.execute(f"SELECT k FROM public.{mapping.name}").fetchall() == [
        (decimal.Decimal("2"),)
    ]


def test_a_target_row_with_a_null_key_is_missing_in_cassandra_and_the_recheck_survives_it(
    cassandra, target, table_pair
) -> None:
    mapping = table_pair("id int, n int, v int, PRIMARY KEY (id, n)", "id int, n int, v int")
    cassandra.execute(f"INSERT INTO {mapping.name} (id, n, v) VALUES (1, 1, 1)")
    target.execute(f"INSERT INTO public.{mapping.name} VALUES (1, 1, 1), (NULL, 2, 1)")

    job = run(mapping, ValidationStrategy.CHECKSUM, recheck_delay=0.01)

    assert found(job) == {'["null","2"]': MismatchType.MISSING_IN_CASSANDRA}
