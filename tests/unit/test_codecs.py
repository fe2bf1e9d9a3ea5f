"""Every codec against its own rules: the fast paths agree with the general compare form, the
canonical form and the key texts read back as the same value, repair's write is exact.

These are properties of each CQL type's codec, checked for every type over sample values
the drivers really hand over, so a new codec or a new fast path is checked too.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import pytest
from cassandra.util import Date, Duration, Time

from reconciliation.engine.canonical import canonicalizer, column_canonicalizer
from reconciliation.engine.codecs import (
    CODECS,
    INLINE_NAMESPACE,
    POSTGRES_TO_CQL_TYPES,
    CannotConvert,
    codec_for,
    text_of,
)
from reconciliation.engine.codecs.lookup import IMPOSSIBLE
from reconciliation.engine.cqltypes import parse_cql_type
from reconciliation.engine.fastpaths import cassandra_converter, postgres_converter
from reconciliation.engine.keys import format_key, parse_key_part
from reconciliation.engine.readable import display_value
from reconciliation.engine.unreadable import is_unreadable
from reconciliation.keyparse import parse_key_value
from reconciliation.repair.target_values import TargetColumn, to_target

BIG = decimal.Decimal("1234567890123456789012345678901.50")
U = uuid.UUID("12345678-1234-5678-1234-567812345678")
T1 = uuid.UUID("50554d6e-29bb-11e5-b345-feff819cdc9f")
WHEN = dt.datetime(2025, 11, 25, 10, 0, 0, 123000)  # the driver's timestamps: naive UTC

# Values of each CQL type as the Cassandra driver returns them.
SOURCE = {
    "text": ["héllo", "", "a b"],
    "varchar": ["x"],
    "ascii": ["abc"],
    "tinyint": [-128, 7],
    "smallint": [300],
    "int": [-42, 0],
    "bigint": [4611686018427387904],
    "varint": [1208925819614629174706177],
    "counter": [5],
    "decimal": [decimal.Decimal("1.10"), BIG, decimal.Decimal("-0.00"), decimal.Decimal("1E+3")],
    "float": [0.10000000149011612, 3.4028234663852886e38, float("nan"), -0.0],
    "double": [0.1, float("inf"), float("-inf"), 1e300],
    "boolean": [True, False],
    "uuid": [U],
    "timeuuid": [T1],
    "timestamp": [WHEN, dt.datetime(1969, 7, 20, 20, 17, 40, 500000)],
    "date": [Date(dt.date(2025, 11, 25)), Date(0)],
    "time": [Time(dt.time(10, 0, 0, 123456)), Time(0)],
    "blob": [b"\x00\xff", b"x"],
    "inet": ["10.0.0.1", "::1"],
    "duration": [Duration(1, 2, 3), Duration(-14, 0, 0)],
}
NOT_KEYS = {"duration", "counter"}

# Values of a target column, as psycopg returns them for each read of a CQL type, with the
# Cassandra value they must equal.
TARGET = {
    ("int", "int4"): [(42, 42)],
    ("bigint", "int8"): [(2**62, 2**62)],
    ("decimal", "numeric"): [(decimal.Decimal("1.1000"), decimal.Decimal("1.1")), (BIG, BIG)],
    ("decimal", "@decimal"): [("1.1", decimal.Decimal("1.10"))],
    ("float", "float4"): [(0.10000000149011612, 0.10000000149011612)],
    ("float", "@f32"): [(0.10000000149011612, 0.10000000149011612)],
    ("double", "float8"): [(0.1, 0.1), (float("nan"), float("nan"))],
    ("uuid", "uuid"): [(U, U)],
    ("uuid", "@bytes"): [(U.bytes, U)],
    ("timestamp", "timestamptz"): [(WHEN.replace(tzinfo=dt.UTC), WHEN)],
    ("timestamp", "timestamp"): [(WHEN, WHEN)],
    ("timestamp", "@ms"): [(1764064800123, WHEN)],
    ("date", "date"): [(dt.date(2025, 11, 25), Date(dt.date(2025, 11, 25)))],
    ("date", "@days"): [(20417, Date(dt.date(2025, 11, 25)))],
    ("time", "time"): [(dt.time(10, 0, 0, 123456), Time(dt.time(10, 0, 0, 123456)))],
    ("blob", "bytea"): [(b"\x00\xff", b"\x00\xff"), (memoryview(b"x"), b"x")],
    ("text", "text"): [("héllo", "héllo")],
    ("boolean", "bool"): [(True, True)],
    ("duration", "@interval"): [("1mo2d3ns", Duration(1, 2, 3))],
}


def _same(a: object, b: object) -> bool:
    return a == b or (a != a and b != b)  # NaN's compare form is "NaN"; floats NaN too


def _samples() -> list[tuple[str, object]]:
    return [(name, value) for name, values in SOURCE.items() for value in values]


def test_every_scalar_type_has_a_codec_and_every_codec_samples() -> None:
    assert set(CODECS) == set(SOURCE)


@pytest.mark.parametrize(("name", "value"), _samples())
def test_the_cassandra_fast_path_is_the_general_compare_form(name, value) -> None:
    codec = codec_for(name)
    general = codec.compare(value)
    assert not is_unreadable(general)
    fast = value if codec.cassandra_fast is None else codec.cassandra_fast(value)
    assert _same(fast, general)
    if codec.cassandra_inline is not None:
        inline = eval(codec.cassandra_inline.format(v="v"), dict(INLINE_NAMESPACE), {"v": value})  # noqa: S307
        assert _same(inline, general)


@pytest.mark.parametrize(("name", "value"), _samples())
def test_in_a_list_or_a_set_the_fast_path_is_the_general_one(name, value) -> None:
    # The elements of a collection are driver values, never the scan's selected forms
    # (a timestamp in a list is a datetime, not epoch milliseconds).
    for container in ("list", "set"):
        if container == "set" and name == "duration":
            continue  # Cassandra has no set<duration>
        ctype = parse_cql_type(f"{container}<{name}>")
        fast = cassandra_converter(ctype)
        assert fast is not None
        assert _same(fast([value, value])[0], column_canonicalizer(ctype)([value, value])[0])


@pytest.mark.parametrize(
    ("name", "read_as", "value", "source"),
    [(n, r, v, c) for (n, r), pairs in TARGET.items() for v, c in pairs],
)
def test_the_postgres_fast_path_gives_the_sources_compare_form(
    name, read_as, value, source
) -> None:
    ctype = parse_cql_type(name)
    codec = codec_for(name)
    assert read_as in codec.postgres_fast
    fast = postgres_converter(ctype, read_as)
    got = value if fast is None else fast(value)
    assert _same(got, codec.compare(source))
    inline = codec.postgres_inline.get(read_as)
    if inline is not None:
        result = eval(inline.format(v="v"), dict(INLINE_NAMESPACE), {"v": value})  # noqa: S307
        assert _same(result, got)


@pytest.mark.parametrize(("name", "value"), _samples())
def test_the_canonical_form_reads_back_as_the_same_value(name, value) -> None:
    ctype = parse_cql_type(name)
    form = canonicalizer(ctype)(value)
    shown = display_value(ctype, form)
    assert _same(canonicalizer(ctype)(shown), form)


@pytest.mark.parametrize(("name", "value"), [s for s in _samples() if s[0] not in NOT_KEYS])
def test_a_keys_text_parses_back_strictly_and_leniently_to_the_same_value(name, value) -> None:
    text = format_key([value])
    assert text == text_of(value)
    compare = canonicalizer(parse_cql_type(name))
    for parsed in (parse_key_value(text, name, "k"), parse_key_part(text, name)):
        assert _same(compare(parsed), compare(value)), (text, parsed)


def test_a_decimals_text_keeps_every_digit() -> None:
    assert text_of(BIG) == "1234567890123456789012345678901.5"
    assert text_of(decimal.Decimal("-0.00")) == "0"
    assert text_of(decimal.Decimal("1E+3")) == "1000"
    assert parse_key_value("1234567890123456789012345678901.50", "decimal", "k") == BIG


@pytest.mark.parametrize("udt", ["numeric", "text", "float8", "int8"])
def test_repair_writes_a_decimal_exactly_or_refuses(udt) -> None:
    column = TargetColumn("v", "", udt)
    ctype = parse_cql_type("decimal")
    if udt in {"float8", "int8"}:
        with pytest.raises(CannotConvert):
            to_target(BIG, column, ctype)
        return
    written = to_target(BIG, column, ctype)
    assert decimal.Decimal(written) == BIG
    if udt == "numeric":
        assert written.as_tuple() == BIG.as_tuple()  # the source's digits and scale


def test_repair_writes_a_duration_field_by_field_or_refuses() -> None:
    ctype = parse_cql_type("duration")
    interval = TargetColumn("v", "", "interval")
    assert to_target(Duration(1, 2, 3000), interval, ctype) == "1 months 2 days 3 microseconds"
    assert to_target(Duration(1, 2, 3), TargetColumn("v", "", "text"), ctype) == "1mo2d3ns"
    with pytest.raises(CannotConvert, match="nanoseconds"):
        to_target(Duration(0, 0, 1), interval, ctype)
    with pytest.raises(CannotConvert):
        to_target(Duration(0, 1, 0), TargetColumn("v", "", "int8"), ctype)


def test_a_timestamp_list_goes_into_an_array_as_timestamps() -> None:
    column = TargetColumn("v", "ARRAY", "_timestamptz")
    written = to_target([WHEN], column, parse_cql_type("list<timestamp>"))
    assert written == [WHEN.replace(tzinfo=dt.UTC)]


def test_the_strict_parse_takes_the_canonical_float_texts_and_refuses_others() -> None:
    assert parse_key_value("3.4028235e+38", "float", "k") == pytest.approx(3.4028235e38)
    assert parse_key_value("-Infinity", "double", "k") == float("-inf")
    for text, kind in [("1e39", "float"), ("nan", "double"), ("1e309", "double")]:
        with pytest.raises(ValueError):
            parse_key_value(text, kind, "k")


def test_the_erasure_fallback_reads_each_target_type_as_its_codec() -> None:
    for pg, cql in POSTGRES_TO_CQL_TYPES.items():
        assert pg in codec_for(cql).postgres_types
    assert POSTGRES_TO_CQL_TYPES["numeric"] == "decimal"
    assert POSTGRES_TO_CQL_TYPES["timestamp with time zone"] == "timestamp"


@pytest.mark.parametrize(("name", "value"), [s for s in _samples() if s[0] not in NOT_KEYS])
def test_every_key_filter_takes_the_keys_compare_form(name, value) -> None:
    codec = codec_for(name)
    form = codec.compare(value)
    for pg, key_filter in codec.key_filters.items():
        assert "{c}" in key_filter.template and "{x}" in key_filter.template, pg
        if name == "varint" and pg.startswith("int"):
            assert key_filter.param(form) is IMPOSSIBLE  # beyond an int8 column's range
            continue
        assert key_filter.param(form) is not IMPOSSIBLE, (pg, form)
    assert codec.key_filters.get("jsonb") is None  # a jsonb key is found by its range
