"""Equality across type systems: the canonical form of design §5, one rule at a time."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import ipaddress
import json
import uuid

import pytest
from cassandra.cqltypes import Int32Type
from cassandra.util import Date, Duration, OrderedMapSerializedKey, SortedSet, Time
from hypothesis import given
from hypothesis import strategies as st

from reconciliation.engine.cqltypes import CqlType, UnsupportedType, parse_cql_type
from reconciliation.engine.readable import (
    canonical_json,
    primary_key_text,
    row_checksum,
    to_canonical,
)

UDTS = {
    "address": (["street", "zip"], ["text", "int"]),
    "person": (["name", "home"], ["text", "frozen<address>"]),
}


def same(cql_type: str, cassandra_value: object, postgres_value: object) -> bool:
    ctype = parse_cql_type(cql_type, UDTS)
    return to_canonical(ctype, cassandra_value) == to_canonical(ctype, postgres_value)


def canonical(cql_type: str, value: object) -> object:
    return to_canonical(parse_cql_type(cql_type, UDTS), value)


# -- parsing type strings ------------------------------------------------------------------


def test_nested_frozen_collections_parse_into_a_tree() -> None:
    parsed = parse_cql_type("frozen<map<text, frozen<list<int>>>>")

    assert parsed == CqlType(
        "map",
        (CqlType("text"), CqlType("list", (CqlType("int"),), frozen=True)),
        frozen=True,
    )
    assert str(parsed) == "frozen<map<text, frozen<list<int>>>>"


def test_user_types_resolve_to_their_fields_recursively() -> None:
    parsed = parse_cql_type("frozen<person>", UDTS)

    assert parsed.name == "udt" and parsed.udt_name == "person"
    assert [name for name, _ in parsed.fields] == ["name", "home"]
    assert [name for name, _ in parsed.fields[1][1].fields] == ["street", "zip"]


def test_tuples_and_vectors_parse() -> None:
    assert parse_cql_type("tuple<int, text>").params == (CqlType("int"), CqlType("text"))
    assert parse_cql_type("vector<float, 3>").size == 3


def test_an_unknown_type_is_refused() -> None:
    with pytest.raises(UnsupportedType):
        parse_cql_type("frozen<nope>")


# -- simple types ----------------------------------------------------------------------------


def test_text_is_compared_as_is_and_an_empty_string_is_not_null() -> None:
    assert same("text", "héllo", "héllo")
    assert not same("text", "a", "a ")
    assert not same("text", "", None)
    assert canonical("varchar", "") == ""


@pytest.mark.parametrize("cql_type", ["tinyint", "smallint", "int", "bigint", "varint", "counter"])
def test_integers_equal_integer_and_numeric_zero_scale_values(cql_type: str) -> None:
    assert same(cql_type, 42, 42)
    assert same(cql_type, 42, decimal.Decimal("42"))
    assert not same(cql_type, 42, 43)
    assert not same(cql_type, 1, True)


def test_varint_keeps_huge_integers_exact() -> None:
    big = 2**80 + 1
    assert same("varint", big, decimal.Decimal(big))
    assert not same("varint", big, decimal.Decimal(big - 1))


def test_decimals_are_the_same_number_whatever_the_scale() -> None:
    assert same("decimal", decimal.Decimal("1.10"), decimal.Decimal("1.1"))
    assert same("decimal", decimal.Decimal("100"), decimal.Decimal("1E+2"))
    assert same("decimal", decimal.Decimal("0.00"), decimal.Decimal("-0"))
    assert not same("decimal", decimal.Decimal("1.1"), decimal.Decimal("1.11"))
    assert canonical("decimal", decimal.Decimal("1E+2")) == "100"
    assert canonical("decimal", decimal.Decimal("1.10")) == "1.1"


def test_floats_are_equal_as_32_bit_floats() -> None:
    # Cassandra hands back the float32 nearest 0.1; a real column or JSON holds "0.1".
    as_float32 = 0.10000000149011612
    assert same("float", as_float32, 0.1)
    assert same("float", as_float32, decimal.Decimal("0.1"))
    assert not same("float", 0.1, 0.1000001)
    assert canonical("float", as_float32) == 0.1


def test_doubles_are_equal_as_64_bit_floats_and_nan_equals_nan() -> None:
    assert same("double", 0.1, 0.1)
    assert not same("double", 0.1, 0.10000000149011612)
    assert same("double", float("nan"), float("nan"))
    assert same("double", float("inf"), "Infinity")
    assert same("double", 0.0, -0.0)
    assert not same("double", float("inf"), float("-inf"))


def test_booleans() -> None:
    assert same("boolean", True, True)
    assert not same("boolean", True, False)


def test_uuids_match_a_uuid_column_or_text_holding_one() -> None:
    value = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert same("uuid", value, value)
    assert same("uuid", value, "12345678-1234-5678-1234-567812345678".upper())
    assert same("timeuuid", value, "{12345678-1234-5678-1234-567812345678}")
    assert not same("uuid", value, uuid.uuid4())
    assert not same("uuid", value, "not a uuid")


def test_timestamps_are_the_same_instant_at_millisecond_precision() -> None:
    cassandra = dt.datetime(2025, 11, 25, 10, 0, 0, 123000)  # the driver: naive UTC
    assert same("timestamp", cassandra, dt.datetime(2025, 11, 25, 10, 0, 0, 123999, dt.UTC))
    paris = dt.timezone(dt.timedelta(hours=1))
    assert same("timestamp", cassandra, dt.datetime(2025, 11, 25, 11, 0, 0, 123456, paris))
    assert same("timestamp", cassandra, dt.datetime(2025, 11, 25, 10, 0, 0, 123400))  # naive: UTC
    assert not same("timestamp", cassandra, dt.datetime(2025, 11, 25, 10, 0, 0, 124000, dt.UTC))
    assert canonical("timestamp", cassandra) == "2025-11-25T10:00:00.123Z"


def test_dates_and_times() -> None:
    assert same("date", Date(dt.date(2025, 11, 25)), dt.date(2025, 11, 25))
    assert not same("date", Date(dt.date(2025, 11, 25)), dt.date(2025, 11, 26))
    assert same("time", Time(dt.time(10, 0, 0, 123456)), dt.time(10, 0, 0, 123456))
    assert same("time", Time(36000123456789), dt.time(10, 0, 0, 123456))  # nanoseconds cut
    assert not same("time", Time(dt.time(10, 0, 0, 123456)), dt.time(10, 0, 0, 123457))
    assert canonical("time", dt.time(10, 0)) == "10:00:00.000000"


def test_blobs_match_bytea_and_show_as_hex() -> None:
    assert same("blob", b"\x00\xff", memoryview(b"\x00\xff"))
    assert not same("blob", b"\x00\xff", b"\x00\xfe")
    assert canonical("blob", b"\x00\xff") == "00ff"


def test_inet_matches_inet_or_text() -> None:
    assert same("inet", "10.0.0.1", ipaddress.ip_address("10.0.0.1"))
    assert same("inet", "::1", "0:0:0:0:0:0:0:1")
    assert same("inet", "10.0.0.1", ipaddress.ip_interface("10.0.0.1/32"))
    assert not same("inet", "10.0.0.1", ipaddress.ip_interface("10.0.0.1/8"))
    assert not same("inet", "10.0.0.1", "10.0.0.2")


def test_durations_compare_months_days_and_time_apart() -> None:
    # The target's interval arrives as "<months>mo<days>d<nanoseconds>ns" (postgres.py).
    assert same("duration", Duration(0, 2, 3000), "0mo2d3000ns")
    assert same("duration", Duration(-14, 3, 90001500000000), "-14mo3d90001500000000ns")
    assert not same("duration", Duration(1, 0, 0), "0mo30d0ns")  # a month is not 30 days
    assert not same("duration", Duration(0, 1, 3_600_000_000_000), "0mo0d90000000000000ns")
    # A timedelta has folded months and days together: it equals no duration.
    assert not same("duration", Duration(0, 2, 3000), dt.timedelta(days=2, microseconds=3))
    assert canonical("duration", Duration(1, 2, 3)) == "1mo2d3ns"


def test_unreadable_values_are_shown_as_written_and_counted() -> None:
    from reconciliation.engine.unreadable import count_unreadable, is_unreadable

    value = canonical("uuid", "not-a-uuid")
    assert value == "<invalid 'not-a-uuid'>"
    assert is_unreadable(value)
    assert canonical("list<int>", {"a": 1}) == "<invalid {'a': 1}>"
    assert count_unreadable({"a": value, "b": [1, value], "c": "fine"}) == 2


# -- collections, tuples, UDTs ------------------------------------------------------------------


def test_lists_match_arrays_or_jsonb_arrays_in_order() -> None:
    assert same("list<int>", [1, 2, 3], [1, 2, 3])
    assert same("list<int>", [1, 2, 3], "[1, 2, 3]")  # jsonb read as text
    assert not same("list<int>", [1, 2, 3], [3, 2, 1])


def test_sets_ignore_order_and_show_sorted() -> None:
    assert same("set<text>", SortedSet(["b", "a"]), ["a", "b"])
    assert same("set<text>", SortedSet(["b", "a"]), ["b", "a"])
    assert not same("set<text>", SortedSet(["a"]), ["a", "b"])
    assert canonical("set<int>", [3, 1, 2]) == [1, 2, 3]


def test_maps_match_jsonb_objects_with_text_keys() -> None:
    cassandra = OrderedMapSerializedKey(Int32Type, 4)  # what the driver returns for a map
    cassandra._insert_unchecked(2, b"\x00\x00\x00\x02", "two")
    cassandra._insert_unchecked(1, b"\x00\x00\x00\x01", "one")
    assert same("map<int, text>", cassandra, {"1": "one", "2": "two"})
    assert not same("map<int, text>", cassandra, {"1": "one", "2": "deux"})
    assert canonical("map<int, text>", {2: "b", 1: "a"}) == {"1": "a", "2": "b"}
    assert list(canonical("map<text, int>", {"b": 1, "a": 2})) == ["a", "b"]


def test_map_keys_of_timestamps_and_uuids_are_normalised() -> None:
    when = dt.datetime(2025, 1, 1)
    assert same("map<timestamp, int>", {when: 1}, {"2025-01-01T00:00:00Z": 1})
    key = uuid.uuid4()
    assert same("map<uuid, int>", {key: 1}, {str(key).upper(): 1})


def test_frozen_nested_collections_compare_deeply() -> None:
    cql_type = "frozen<map<text, frozen<list<decimal>>>>"
    assert same(cql_type, {"a": [decimal.Decimal("1.10")]}, {"a": [decimal.Decimal("1.1")]})
    assert not same(cql_type, {"a": [decimal.Decimal("1.1")]}, {"a": [decimal.Decimal("1.2")]})


def test_tuples_match_jsonb_arrays_field_by_field() -> None:
    assert same("tuple<int, text>", (1, "a"), [1, "a"])
    assert same("tuple<int, text>", (1, None), [1])
    assert not same("tuple<int, text>", (1, "a"), [1, "b"])


def test_udts_match_jsonb_objects_field_by_field() -> None:
    from collections import namedtuple

    Address = namedtuple("Address", ["street", "zip"])
    Person = namedtuple("Person", ["name", "home"])
    cassandra = Person("Ann", Address("Main St", 1000))
    assert same(
        "frozen<person>", cassandra, {"name": "Ann", "home": {"street": "Main St", "zip": 1000}}
    )
    assert same("frozen<person>", Person("Ann", None), {"name": "Ann"})
    assert not same(
        "frozen<person>", cassandra, {"name": "Ann", "home": {"street": "Main St", "zip": 1001}}
    )
    assert not same("frozen<person>", Person("Ann", None), {"name": "Ann", "age": 3})


def test_an_empty_collection_is_null_and_equals_null_or_an_empty_json_value() -> None:
    for cql_type in ("list<int>", "set<int>", "map<text, int>", "frozen<list<int>>"):
        assert canonical(cql_type, []) is None or canonical(cql_type, {}) is None
        assert same(cql_type, None, None)
    assert same("list<int>", None, [])
    assert same("set<text>", SortedSet(), [])
    assert same("map<text, int>", None, {})
    assert same("map<text, int>", None, "{}")
    assert not same("list<int>", None, [0])


def test_null_equals_only_null() -> None:
    assert same("int", None, None)
    assert not same("int", None, 0)
    assert not same("text", None, "")


# -- checksums, display and keys ---------------------------------------------------------------


def test_the_checksum_is_sha256_of_the_documented_json_in_column_name_order() -> None:
    names, values = ["id", "email", "amount"], ["u1", "a@b", "1.1"]

    encoded = canonical_json(names, values)

    assert encoded == '{"amount":"1.1","email":"a@b","id":"u1"}'
    assert row_checksum(names, values) == hashlib.sha256(encoded.encode()).hexdigest()
    assert len(row_checksum(names, values)) == 64


def test_equal_rows_written_differently_have_the_same_checksum() -> None:
    types = [parse_cql_type(t) for t in ("text", "decimal", "timestamp", "set<int>")]
    names = ["id", "amount", "at", "tags"]
    cassandra = ["u1", decimal.Decimal("1.10"), dt.datetime(2025, 1, 1, 0, 0, 0, 5000), [2, 1]]
    postgres = ["u1", decimal.Decimal("1.1"), "2025-01-01T01:00:00.005999+01:00", "[1, 2]"]

    c_values = [to_canonical(t, v) for t, v in zip(types, cassandra, strict=True)]
    p_values = [to_canonical(t, v) for t, v in zip(types, postgres, strict=True)]

    assert row_checksum(names, c_values) == row_checksum(names, p_values)
    p_values[1] = to_canonical(types[1], decimal.Decimal("1.2"))
    assert row_checksum(names, c_values) != row_checksum(names, p_values)


def test_canonical_values_are_readable_json() -> None:
    row = [
        canonical("timestamp", dt.datetime(2025, 11, 25, 10, 0)),
        canonical("decimal", decimal.Decimal("12.50")),
        canonical("blob", b"\xca\xfe"),
        canonical("set<text>", ["b", "a"]),
        canonical("double", float("nan")),
    ]

    assert json.loads(json.dumps(row, allow_nan=False)) == [
        "2025-11-25T10:00:00.000Z",
        "12.5",
        "cafe",
        ["a", "b"],
        "NaN",
    ]


def test_primary_key_text_is_plain_for_one_column_and_a_json_array_for_several() -> None:
    assert primary_key_text(["user-123"]) == "user-123"
    assert primary_key_text(["acme", "2025-11-25", 7]) == '["acme","2025-11-25","7"]'
    assert primary_key_text([True]) == "true"


@given(
    st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
        lambda d: abs(d.adjusted()) < 60
    )
)
def test_a_decimals_compare_form_is_the_exact_number_in_plain_digits(number) -> None:
    from reconciliation.engine.codecs.numbers import decimal_form as _decimal_form

    form = _decimal_form(number)

    assert decimal.Decimal(form) == number  # exact: no rounding to a context's precision
    assert "e" not in form.lower()
    assert form == "0" or not (("." in form and form.endswith("0")) or form.endswith("."))
