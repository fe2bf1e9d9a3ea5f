"""Key texts are checked against their column's CQL type and range (reconciliation.keyparse)."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import pytest

from reconciliation.engine.keys import BadKey
from reconciliation.keyparse import InvalidKey, parse_key_for_columns, parse_key_value

WIDTHS = {"tinyint": 8, "smallint": 16, "int": 32, "bigint": 64, "counter": 64}


@pytest.mark.parametrize(("kind", "bits"), WIDTHS.items())
def test_every_integer_width_takes_its_bounds_and_refuses_one_past(kind, bits) -> None:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    assert parse_key_value(str(low), kind, "k") == low
    assert parse_key_value(str(high), kind, "k") == high
    for outside in (low - 1, high + 1):
        with pytest.raises(InvalidKey, match="out of range") as error:
            parse_key_value(str(outside), kind, "k")
        assert error.value.column == "k"


@pytest.mark.parametrize("text", ["1_000", " 12", "12 ", "+5", "0x10", "1e3", "", "١٢"])
def test_integers_are_plain_decimal_digits(text) -> None:
    with pytest.raises(InvalidKey):
        parse_key_value(text, "int", "k")


def test_a_varint_is_unbounded_up_to_a_sane_length() -> None:
    assert parse_key_value("9" * 40, "varint", "k") == int("9" * 40)
    with pytest.raises(InvalidKey, match="at most"):
        parse_key_value("9" * 5000, "varint", "k")


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-inf", "1e", "1,5", "0x1p3"])
def test_a_decimal_is_a_finite_number(text) -> None:
    with pytest.raises(InvalidKey):
        parse_key_value(text, "decimal", "amount")


def test_decimals_keep_their_value() -> None:
    assert parse_key_value("-12.50", "decimal", "k") == decimal.Decimal("-12.50")
    assert parse_key_value("1E+3", "decimal", "k") == decimal.Decimal(1000)


def test_floats_stay_within_their_width() -> None:
    assert parse_key_value("1.5", "float", "k") == 1.5
    with pytest.raises(InvalidKey):
        parse_key_value("1e39", "float", "k")
    with pytest.raises(InvalidKey):
        parse_key_value("nan", "double", "k")


def test_uuids_take_only_the_hyphenated_form_and_timeuuids_version_1() -> None:
    value = uuid.uuid4()
    assert parse_key_value(str(value), "uuid", "k") == value
    for text in (value.hex, "{" + str(value) + "}", f"urn:uuid:{value}", str(value)[:-1]):
        with pytest.raises(InvalidKey):
            parse_key_value(text, "uuid", "k")
    assert parse_key_value(str(uuid.uuid1()), "timeuuid", "k").version == 1
    with pytest.raises(InvalidKey, match="version 1"):
        parse_key_value(str(value), "timeuuid", "k")


def test_timestamps_take_iso_8601_or_epoch_milliseconds_in_range() -> None:
    expected = dt.datetime(2025, 11, 25, 10, 0, tzinfo=dt.UTC)
    assert parse_key_value("2025-11-25T10:00:00.000Z", "timestamp", "k") == expected
    assert parse_key_value("1764064800000", "timestamp", "k") == expected
    for text in ("2025-13-01T00:00:00Z", "yesterday", "99999999999999999999", "9" * 18):
        with pytest.raises(InvalidKey):
            parse_key_value(text, "timestamp", "k")


def test_dates_times_inets_blobs_and_booleans() -> None:
    assert parse_key_value("2025-02-28", "date", "k") == dt.date(2025, 2, 28)
    assert parse_key_value("23:59:59.123456", "time", "k") == dt.time(23, 59, 59, 123456)
    assert parse_key_value("::1", "inet", "k") == "::1"
    assert parse_key_value("0xCAFE", "blob", "k") == b"\xca\xfe"
    assert parse_key_value("false", "boolean", "k") is False
    for text, kind in [
        ("2025-02-30", "date"),
        ("20250228", "date"),
        ("24:00:00", "time"),
        ("12:00:00.1234567", "time"),
        ("256.0.0.1", "inet"),
        ("abc", "blob"),
        ("zz", "blob"),
        ("True", "boolean"),
        ("1", "boolean"),
        ("héllo", "ascii"),
    ]:
        with pytest.raises(InvalidKey):
            parse_key_value(text, kind, "k")


def test_nul_characters_and_oversized_parts_are_refused_for_every_type() -> None:
    for kind in ("text", "int", "uuid", "blob"):
        with pytest.raises(InvalidKey, match="NUL"):
            parse_key_value("a\x00b", kind, "k")
    with pytest.raises(InvalidKey, match="65535"):
        parse_key_value("x" * 70_000, "text", "k")


def test_a_composite_key_names_the_column_that_is_wrong() -> None:
    columns = [("tenant", "text"), ("day", "date"), ("seq", "int")]

    assert parse_key_for_columns('["acme","2025-11-25","7"]', columns) == [
        "acme",
        dt.date(2025, 11, 25),
        7,
    ]
    with pytest.raises(InvalidKey) as error:
        parse_key_for_columns('["acme","2025-11-25","99999999999"]', columns)
    assert error.value.column == "seq"
    assert set(error.value.fields) == {"primary_key", "seq"}
    with pytest.raises(BadKey):
        parse_key_for_columns('["acme","2025-11-25"]', columns)
