"""A repair round trip over the whole type matrix, through the real stores.

For every Cassandra type and every target representation the engine compares it with
(``test_type_matrix.MATRIX`` and a few more), on the key and off it: plant rows the target
lacks, holds NULL for, or holds only there; a CHECKSUM finds them; each difference is
repaired from Cassandra; the next CHECKSUM finds the table equal.  Text, jsonb and numeric
columns must then hold exactly the source's value (no rounding on a repair path), and a key
the target spells its own way is updated in place, never written a second time.
"""

from __future__ import annotations

import decimal
from typing import Any

import pytest

from reconciliation.choices import JobStatus, ResolutionStatus, ValidationStrategy
from reconciliation.jobs import create_job, run_in_process
from reconciliation.models import Mismatch, TableMapping
from reconciliation.repair.manual import repair_mismatch
from tests.integration.test_type_matrix import EQUAL, MATRIX, TU, U1

pytestmark = pytest.mark.django_db

BIG = "1234567890123456789012345678901.50"
TS = "'2025-11-25 10:00:00.123+0000'"

# Representations the matrix does not list, and the repair must write faithfully.
EXTRA = [
    (
        "decimal",
        "numeric",
        [(BIG, BIG, EQUAL), ("-0.000000000000000000000000000001", "NULL", EQUAL)],
    ),
    ("decimal", "text", [(BIG, f"'{BIG.rstrip('0')}'", EQUAL), ("1.10", "'1.1'", EQUAL)]),
    ("decimal", "jsonb", [(BIG, "NULL", EQUAL), ("2.50", "NULL", EQUAL)]),
    ("list<timestamp>", "timestamptz[]", [(f"[{TS}, {TS}]", "NULL", EQUAL)]),
    ("list<uuid>", "uuid[]", [(f"[{U1}, {TU}]", "NULL", EQUAL)]),
    ("set<text>", "text[]", [("{'b', 'a'}", "NULL", EQUAL)]),
    ("timestamp", "text", [(TS, "NULL", EQUAL)]),
    ("duration", "text", [("1mo2d3ns", "NULL", EQUAL)]),
    ("map<text, decimal>", "jsonb", [(f"{{'a': {BIG}}}", "NULL", EQUAL)]),
]
CASES = [m for m in MATRIX + EXTRA if m[2] is not None]
# Key columns: the scalar types a Cassandra key can have (not duration, not collections).
KEY_CASES = [m for m in CASES if "<" not in m[0] and m[0] != "duration" and m[1] not in {"jsonb"}]


def _ids(cases: list[Any]) -> list[str]:
    return [f"{c[0]}-{c[1]}" for c in cases]


def _source_literals(cases: list[Any]) -> list[str]:
    literals: list[str] = []
    for cql, _pg, _equal in cases:
        if cql != "NULL" and cql not in literals:
            literals.append(cql)
    return literals


def run_checksum(mapping: TableMapping) -> set[str]:
    """The keys a CHECKSUM job finds different, of any kind."""
    job = create_job(mapping, ValidationStrategy.CHECKSUM)
    run_in_process(job)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error_message
    return set(
        Mismatch.objects.filter(findings__job=job).values_list("primary_key_value", flat=True)
    )


def _repair_everything(mapping: TableMapping, user: Any) -> int:
    pending = Mismatch.objects.filter(
        table_name=mapping.name, resolution_status=ResolutionStatus.PENDING
    )
    repaired = 0
    for mismatch in pending:
        result = repair_mismatch(mismatch, user)
        assert result.action in {"upserted", "deleted", "already_absent"}, result
        repaired += 1
    return repaired


@pytest.mark.parametrize(("cql_type", "pg_type", "cases"), CASES, ids=_ids(CASES))
def test_a_repaired_value_is_equal_next_time_and_exactly_the_sources(
    cassandra, target, table_pair, django_user_model, cql_type, pg_type, cases
) -> None:
    user = django_user_model.objects.create_user("repairer")
    mapping = table_pair(f"id text PRIMARY KEY, v {cql_type}", f"id text PRIMARY KEY, v {pg_type}")
    table = mapping.name
    literals = _source_literals(cases)
    for index, literal in enumerate(literals):
        cassandra.execute(f"INSERT INTO {table} (id, v) VALUES ('k{index}', {literal})")
        if index % 2:  # the target holds NULL for it; otherwise it lacks the row
            target.execute(f"INSERT INTO public.{table} (id, v) VALUES ('k{index}', NULL)")  # noqa: S608
    target.execute(f"INSERT INTO public.{table} (id) VALUES ('only-in-target')")  # noqa: S608

    found = run_checksum(mapping)
    assert "only-in-target" in found
    assert _repair_everything(mapping, user) == len(found)

    again = run_checksum(mapping)
    assert again == set(), f"{cql_type} into {pg_type}: still different after repair: {again}"
    ids = [r[0] for r in target.execute(f"SELECT id FROM public.{table}").fetchall()]  # noqa: S608
    assert sorted(ids) == sorted(f"k{i}" for i in range(len(literals)))
    if pg_type == "numeric" and cql_type == "decimal":
        stored = target.execute(
            f"SELECT v::text FROM public.{table} WHERE id = 'k0'"  # noqa: S608
        ).fetchone()
        assert stored == (BIG,)  # every digit, and the source's scale
    if pg_type == "text" and cql_type == "decimal":
        stored = target.execute(f"SELECT v FROM public.{table} WHERE id = 'k0'").fetchone()  # noqa: S608
        assert stored is not None and decimal.Decimal(stored[0]) == decimal.Decimal(BIG)
        assert stored[0] == BIG.rstrip("0")  # the canonical text, not a 28-digit rounding
    if pg_type == "jsonb" and cql_type in {"decimal", "map<text, decimal>"}:
        stored = target.execute(f"SELECT v::text FROM public.{table} WHERE id = 'k0'").fetchone()  # noqa: S608
        assert stored is not None and BIG.rstrip("0") in stored[0]


@pytest.mark.parametrize(("cql_type", "pg_type", "cases"), KEY_CASES, ids=_ids(KEY_CASES))
def test_a_repair_by_key_updates_the_row_the_target_spells_its_own_way(
    cassandra, target, table_pair, django_user_model, cql_type, pg_type, cases
) -> None:
    user = django_user_model.objects.create_user("repairer")
    mapping = table_pair(f"k {cql_type} PRIMARY KEY, v text", f"k {pg_type} PRIMARY KEY, v text")
    table = mapping.name
    pairs = [
        (cql, pg)
        for cql, pg, equal in cases
        # a key may not be empty
        if equal and "NULL" not in (cql, pg) and cql not in {"0x", "''"}
    ]
    keys: list[str] = []
    spellings: set[str] = set()
    for index, (cql, pg) in enumerate(pairs):
        if cql in keys or pg in spellings:  # two Cassandra keys equal under the key equality
            continue
        keys.append(cql)
        spellings.add(pg)
        cassandra.execute(f"INSERT INTO {table} (k, v) VALUES ({cql}, 'source')")
        if index % 2 == 0:  # the target holds it, spelt its way, stale
            target.execute(f"INSERT INTO public.{table} (k, v) VALUES ({pg}, 'stale')")  # noqa: S608

    found = run_checksum(mapping)
    assert len(found) == len(keys)
    assert _repair_everything(mapping, user) == len(found)

    again = run_checksum(mapping)
    assert again == set(), f"{cql_type} key as {pg_type}: still different: {again}"
    rows = target.execute(f"SELECT v FROM public.{table}").fetchall()  # noqa: S608
    assert sorted(r[0] for r in rows) == ["source"] * len(keys)  # one row per key, no more
