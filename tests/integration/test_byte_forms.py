"""Comparing rows by byte form (``engine/rowhash.py``), through the real stores.

A CHECKSUM hashes what each store holds, in one exact byte form per type, and decodes only
the rows whose hashes differ.  These tests plant differences of representation only (bytes
that differ for equal values: a time with nanoseconds against microseconds, -0.0 against
0.0, a decimal's scale in a decoded column) and expect none reported; and one real change
among them, which must be found, with the full verdict (type, values).
"""

from __future__ import annotations

import decimal
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from reconciliation.choices import JobStatus, MismatchType, ValidationStrategy
from reconciliation.connections import cassandra_session, consistency_level, target_connection
from reconciliation.engine import Engine, Options, stage_records
from reconciliation.engine.records import MAX_TOKEN, MIN_TOKEN
from reconciliation.jobs import create_job, run_in_process
from reconciliation.jobs.create import engine_options
from reconciliation.models import Mismatch

pytestmark = pytest.mark.django_db

CASSANDRA = (
    "id text PRIMARY KEY, t time, d double, f float, n int, s text, b boolean, u uuid, "
    "ts timestamp, day date, blob_ blob, ip inet, price decimal, tags set<text>, "
    "names list<text>, big varint, tiny tinyint"
)
POSTGRES = (
    "id text PRIMARY KEY, t time, d double precision, f real, n integer, s text, b boolean, "
    "u uuid, ts timestamptz, day date, blob_ bytea, ip inet, price numeric(14, 4), tags text[], "
    "names text[], big numeric, tiny smallint"
)
HASHED = {
    "t",
    "d",
    "f",
    "n",
    "s",
    "b",
    "u",
    "ts",
    "day",
    "blob_",
    "ip",
    "price",
    "tags",
    "names",
    "big",
    "tiny",
}
SETTINGS = hypothesis_settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)


def _engine(mapping: Any) -> Engine:
    return Engine(
        mapping.spec,
        cassandra_session(),
        target_connection,
        Options(consistency=consistency_level()),
        report=lambda difference: None,
    )


def _checksum(mapping: Any) -> dict[str, str]:
    job = create_job(mapping, ValidationStrategy.CHECKSUM)
    run_in_process(job)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error_message
    found = Mismatch.objects.filter(findings__job=job)
    return dict(found.values_list("primary_key_value", "mismatch_type"))


# Each row: (CQL literals, SQL literals) of equal values; the variants differ in bytes only.
ROW = st.fixed_dictionaries(
    {
        "t": st.sampled_from(
            [("'10:00:00.123456789'", "'10:00:00.123456'"), ("'00:00:01'", "'00:00:01'")]
        ),
        "d": st.sampled_from([("-0.0", "0"), ("0.0", "'-0'"), ("NaN", "'NaN'"), ("1.5", "1.5")]),
        "f": st.sampled_from([("-0.0", "0"), ("0.25", "0.25"), ("NULL", "NULL")]),
        "n": st.integers(-(2**31), 2**31 - 1).map(lambda n: (str(n), str(n))),
        "s": st.text(
            st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00'"), max_size=5
        ).map(lambda s: (f"'{s}'", f"'{s}'")),
        "b": st.sampled_from([("true", "true"), ("false", "false"), ("NULL", "NULL")]),
        "u": st.uuids().map(lambda u: (str(u), f"'{u}'")),
        "ts": st.sampled_from(
            [("'2025-11-25 10:00:00.123+0000'", "'2025-11-25 10:00:00.123999+00'")]
        ),
        "day": st.sampled_from(
            [("'2025-11-25'", "'2025-11-25'"), ("'1900-01-01'", "'1900-01-01'")]
        ),
        "blob_": st.binary(max_size=4).map(lambda b: (f"0x{b.hex()}", f"'\\x{b.hex()}'")),
        "ip": st.sampled_from([("'10.0.0.1'", "'10.0.0.1'"), ("'::1'", "'0:0::1'")]),
        # a scale apart: decoded, and equal
        "price": st.decimals(min_value=-1000, max_value=1000, places=2).map(
            lambda d: (str(d), str(decimal.Decimal(d).quantize(decimal.Decimal("0.0001"))))
        ),
        "big": st.sampled_from(
            [("12345678901234567890123", "12345678901234567890123.000"), ("-1", "-1")]
        ),
        "tiny": st.integers(-128, 127).map(lambda n: (str(n), str(n))),
        "tags": st.sampled_from(
            [
                ("{'b', 'a'}", "ARRAY['a', 'b']"),
                ("{}", "NULL"),
                ("{}", "'{}'"),
                ("NULL", "'{}'"),
                # JSON-escaped on both sides: quotes, a backslash, a control character, non-ASCII
                (
                    "{'say \"hi\"', 'back\\slash', 'é', 'Z'}",
                    "ARRAY['Z', 'é', 'back\\slash', 'say \"hi\"']",
                ),
                ("{'tab	in'}", "ARRAY[E'tab\\tin']"),
            ]
        ),
        "names": st.sampled_from(
            [("['b', 'a', 'b']", "ARRAY['b', 'a', 'b']"), ("[]", "NULL"), ("['x']", "'{x}'")]
        ),
    }
)


@SETTINGS
@given(rows=st.lists(ROW, min_size=3, max_size=6), changed=st.integers(0, 5))
def test_representation_only_differences_are_never_reported_and_a_real_one_is(
    cassandra, target, table_pair, rows, changed
) -> None:
    mapping = table_pair(CASSANDRA, POSTGRES)
    engine = _engine(mapping)
    assert engine.scan.hashed  # the scan compares byte forms: this test is about that path
    assert {c.name for c in engine.layout.hashed_values} == HASHED
    table = mapping.name
    columns = sorted(rows[0])
    names = ", ".join(columns)
    for index, row in enumerate(rows):
        cql = ", ".join(row[c][0] for c in columns)
        sql = ", ".join(row[c][1] for c in columns)
        cassandra.execute(f"INSERT INTO {table} (id, {names}) VALUES ('k{index}', {cql})")
        target.execute(f"INSERT INTO public.{table} (id, {names}) VALUES ('k{index}', {sql})")  # noqa: S608

    assert _checksum(mapping) == {}

    key = f"k{changed % len(rows)}"
    target.execute(f"UPDATE public.{table} SET n = n # 1 WHERE id = %s", (key,))  # noqa: S608
    assert _checksum(mapping) == {key: MismatchType.DATA_MISMATCH}
    target.execute(f"DELETE FROM public.{table} WHERE id = %s", (key,))  # noqa: S608
    assert _checksum(mapping) == {key: MismatchType.MISSING_IN_POSTGRES}


def test_a_difference_found_by_byte_form_carries_the_decoded_rows_and_write_time(
    cassandra, target, table_pair
) -> None:
    mapping = table_pair("id text PRIMARY KEY, n int, u uuid", "id text PRIMARY KEY, n int, u uuid")
    owner = uuid.uuid4()
    cassandra.execute(f"INSERT INTO {mapping.name} (id, n, u) VALUES ('a', 1, {owner})")
    target.execute(f"INSERT INTO public.{mapping.name} VALUES ('a', 2, '{owner}')")  # noqa: S608
    assert _engine(mapping).scan.hashed

    assert _checksum(mapping) == {"a": MismatchType.DATA_MISMATCH}
    found = Mismatch.objects.get(table_name=mapping.name, primary_key_value="a")
    assert found.cassandra_data == {"id": "a", "n": 1, "u": str(owner)}
    assert found.postgres_data == {"id": "a", "n": 2, "u": str(owner)}
    assert found.source_write_time is not None  # read with the key, not in the scan


def test_a_table_with_many_differences_last_time_is_decoded_in_the_scan(
    cassandra, target, table_pair
) -> None:
    mapping = table_pair("id text PRIMARY KEY, n int", "id text PRIMARY KEY, n int")
    for index in range(10):
        cassandra.execute(f"INSERT INTO {mapping.name} (id, n) VALUES ('k{index}', {index})")
    target.execute(f"INSERT INTO public.{mapping.name} VALUES ('k0', 0)")  # noqa: S608

    first = create_job(mapping, ValidationStrategy.CHECKSUM)
    assert engine_options(first).byte_forms  # no run before it: byte forms
    run_in_process(first)
    first.refresh_from_db()
    assert first.mismatch_count == 9

    second = create_job(mapping, ValidationStrategy.CHECKSUM)
    assert not engine_options(second).byte_forms  # 90% differed last time: decode the scan
    run_in_process(second)
    second.refresh_from_db()
    assert second.status == JobStatus.COMPLETED
    assert second.mismatch_count == 9


def test_equal_rows_written_the_same_way_agree_by_their_bytes_alone(
    cassandra, target, table_pair
) -> None:
    """The byte forms are the same on both sides for equal values written alike: such rows
    never need decoding (each type's form in ``codecs``)."""
    mapping = table_pair(CASSANDRA, POSTGRES)
    table = mapping.name
    rows = {
        "full": (
            "'10:00:00.123456', 1.5, 0.25, 7, 'héllo \"q\"', true, "
            "12345678-1234-5678-1234-567812345678, '2025-11-25 10:00:00.123+0000', "
            "'2025-11-25', 0x00ff, '10.0.0.1', 12.5, {'b', 'a', 'say \"hi\"', 'é'}, "
            "['y', 'x'], 123456789012345678901, -5",
            "'10:00:00.123456', 1.5, 0.25, 7, 'héllo \"q\"', true, "
            "'12345678-1234-5678-1234-567812345678', '2025-11-25 10:00:00.123+00', "
            "'2025-11-25', '\\x00ff', '10.0.0.1', 12.5, ARRAY['a', 'b', 'say \"hi\"', 'é'], "
            "ARRAY['y', 'x'], 123456789012345678901, -5",
        ),
        "nulls": (", ".join(["NULL"] * 16), ", ".join(["NULL"] * 16)),
    }
    names = "t, d, f, n, s, b, u, ts, day, blob_, ip, price, tags, names, big, tiny"
    for key, (cql, sql) in rows.items():
        cassandra.execute(f"INSERT INTO {table} (id, {names}) VALUES ('{key}', {cql})")
        target.execute(f"INSERT INTO public.{table} (id, {names}) VALUES ('{key}', {sql})")  # noqa: S608
    engine = _engine(mapping)
    staged = {key: row for _, key, row in stage_records(engine, None, None)}
    pages = engine.cassandra.stream(
        [(MIN_TOKEN, MAX_TOKEN)], selectors=engine.scan.cassandra_selectors
    )
    source = {r[1]: r[2] for page in pages for r in map(engine.scan.cassandra_record, page)}

    assert len(source) == len(staged) == 2
    assert source == staged
