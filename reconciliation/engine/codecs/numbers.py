"""The numeric CQL types: tinyint … bigint, varint, counter, decimal, float, double.

Compare forms: an integer is the ``int``; a decimal its exact text without exponent or
trailing zeros (``1.10`` and ``1.1`` give ``1.1``, as PostgreSQL's ``trim_scale(x)::text``);
a float the exact 32-bit value, a double the 64-bit one, NaN/±Infinity as ``"NaN"``,
``"Infinity"``, ``"-Infinity"`` and -0.0 as 0.0.
"""

from __future__ import annotations

import decimal
import math
import re
from typing import Any

from reconciliation.engine.codecs.base import FLOAT32, Codec, into_target
from reconciliation.engine.codecs.lookup import (
    INT8,
    KeyFilter,
    float_param,
    guard,
    int_param,
    strings,
)
from reconciliation.engine.unreadable import invalid

INTEGER_BITS = {"tinyint": 8, "smallint": 16, "int": 32, "bigint": 64, "counter": 64}
MAX_VARINT_DIGITS = 1000
MAX_DECIMAL_DIGITS = 1000
FLOAT_MAX = {"float": 3.4028234663852886e38, "double": 1.7976931348623157e308}

_INTEGER = re.compile(r"-?[0-9]+\Z")
_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\Z")
_INF = math.inf

# -- compare forms ------------------------------------------------------------------------------


def integer_form(value: Any) -> Any:
    if isinstance(value, bool):
        return invalid(value)
    if isinstance(value, int):
        return value
    try:
        number = decimal.Decimal(value.strip()) if isinstance(value, str) else value
        if isinstance(number, float) and not number.is_integer():
            return invalid(value)
        if isinstance(number, decimal.Decimal) and number != number.to_integral_value():
            return invalid(value)
        return int(number)
    except (ValueError, TypeError, ArithmeticError):
        return invalid(value)


def decimal_form(number: decimal.Decimal) -> str:
    """A decimal's compare form: its text without exponent or trailing zeros, exactly."""
    if not number:
        return "0"
    if not number.is_finite():
        return "NaN" if number.is_nan() else ("Infinity" if number > 0 else "-Infinity")
    text = format(number, "f")  # exact, whatever the digits (no context rounding)
    return text.rstrip("0").rstrip(".") if "." in text else text


def _decimal(value: Any) -> Any:
    try:
        if isinstance(value, bool):
            return invalid(value)
        if isinstance(value, decimal.Decimal):
            return decimal_form(value)
        if isinstance(value, float):
            return decimal_form(decimal.Decimal(repr(value)))
        return decimal_form(decimal.Decimal(str(value).strip()))
    except (ValueError, ArithmeticError):
        return invalid(value)


def special_float(value: float) -> str:
    if value != value:
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def finite_or_special(value: float) -> Any:
    # value - value is 0.0 for finite numbers only; + 0.0 turns -0.0 into 0.0.
    return value + 0.0 if value - value == 0 else special_float(value)


def round_float32(value: float) -> Any:
    if value - value != 0:
        return special_float(value)
    return FLOAT32.unpack(FLOAT32.pack(value))[0] + 0.0


def _to_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return value
    if isinstance(value, int | decimal.Decimal):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in {"nan", "infinity", "+infinity", "-infinity", "inf", "-inf"}:
            return float(text.replace("infinity", "inf"))
        try:
            return float(text)
        except ValueError:
            return None
    return None


def _double(value: Any) -> Any:
    number = _to_float(value)
    return invalid(value) if number is None else finite_or_special(number)


def _float32(value: Any) -> Any:
    """The exact 32-bit float nearest the value (how Cassandra stores a float)."""
    number = _to_float(value)
    if number is None:
        return invalid(value)
    if number - number != 0:
        return special_float(number)
    try:
        return finite_or_special(FLOAT32.unpack(FLOAT32.pack(number))[0])
    except OverflowError:
        return special_float(math.copysign(_INF, number))


# -- the canonical form ---------------------------------------------------------------------------


def _shortest_float32(value: Any) -> Any:
    if not isinstance(value, float):
        return value  # NaN / Infinity
    for digits in range(6, 10):
        shortest = float(f"{value:.{digits}g}")
        if FLOAT32.unpack(FLOAT32.pack(shortest))[0] == value:
            return shortest
    return value


def _display_decimal(text: Any) -> Any:
    try:
        number = decimal.Decimal(text)
    except (ArithmeticError, TypeError, ValueError):
        return text
    return format(number, "f") if number.is_finite() else text


# -- strict parse (a key's text) ------------------------------------------------------------------


def _parse_integer(kind: str) -> Any:
    def parse(text: str) -> int:
        if not _INTEGER.match(text):
            raise ValueError(f"{text!r} is not a whole number (digits with an optional '-').")
        digits = len(text.lstrip("-"))
        if kind == "varint":
            if digits > MAX_VARINT_DIGITS:
                raise ValueError(f"a varint key may have at most {MAX_VARINT_DIGITS} digits.")
            return int(text)
        if digits > 20:  # cheaper than int() on a huge string, and out of every range anyway
            raise ValueError(f"{text[:24]}... is out of range for {kind}.")
        value = int(text)
        bits = INTEGER_BITS[kind]
        low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range for {kind} ({low} to {high}).")
        return value

    return parse


def _parse_decimal(text: str) -> decimal.Decimal:
    if not _DECIMAL.match(text):
        raise ValueError(f"{text!r} is not a finite decimal number.")
    value = decimal.Decimal(text)
    if len(value.as_tuple().digits) > MAX_DECIMAL_DIGITS:
        raise ValueError(f"a decimal key may have at most {MAX_DECIMAL_DIGITS} digits.")
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int) or not -(2**31) <= -exponent <= 2**31 - 1:
        raise ValueError(f"{text!r} has a scale out of range for decimal.")
    return value


_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _parse_float(kind: str) -> Any:
    def parse(text: str) -> float:
        if text in _SPECIAL_FLOATS:  # the canonical spellings: Cassandra keys may be these
            return _SPECIAL_FLOATS[text]
        if not _DECIMAL.match(text):
            raise ValueError(f"{text!r} is not a number (digits, or NaN, Infinity, -Infinity).")
        value = float(text)
        try:
            # A float's canonical text is the shortest that rounds back to the 32-bit value,
            # so 3.4028235e+38, just past the largest float as a double, is a float.
            fits = math.isfinite(value) and (kind == "double" or FLOAT32.pack(value) != b"")
        except OverflowError:
            fits = False
        if not fits or abs(value) > FLOAT_MAX["double"]:
            raise ValueError(f"{text!r} is out of range for {kind}.")
        return value

    return parse


# -- repair's write ---------------------------------------------------------------------------------


def _decimal_target(value: Any, udt: str) -> Any:
    # A decimal goes into numeric as it is (every digit, its scale); into a float column
    # only when the float holds it exactly, so a repair never rounds.
    if udt in {"float4", "float8"} and isinstance(value, decimal.Decimal):
        as_float = float(value)
        if decimal.Decimal(repr(as_float)) != value:
            raise ValueError(f"{value} has more digits than a {udt} column holds")
    return into_target(value, udt)


# Cassandra serialises these integers as big-endian two's complement of their width, as
# PostgreSQL's int2send / int4send / int8send do (tinyint has no 1-byte PostgreSQL type).
_INTEGER_BYTES = {"smallint": "int2", "int": "int4", "bigint": "int8"}


# Numbers by their text, where no binary form is shared: Cassandra's CAST(x AS text) (Java's
# BigInteger / BigDecimal toString) and PostgreSQL's text of the same number agree for equal
# values in plain notation; a value Cassandra writes otherwise (1E-7, 1.10) is decoded.
AS_TEXT = "textasblob(cast({} as text))"
_TEXT_OF_NUMBER = ("convert_to({}::text, 'UTF8')", 0)
_TEXT_OF_NUMERIC = ("convert_to(trim_scale({})::text, 'UTF8')", 130000)


def _integer_codec(kind: str) -> Codec:
    pg = _INTEGER_BYTES.get(kind)
    by_text = {t: _TEXT_OF_NUMBER for t in ("int2", "int4", "int8")}
    return Codec(
        cassandra_bytes=f"{kind}asblob({{}})" if pg else (AS_TEXT if kind != "counter" else None),
        byte_forms={pg: (f"{pg}send({{}})", 0)}
        if pg
        else ({**by_text, "numeric": _TEXT_OF_NUMERIC} if kind != "counter" else {}),
        names=(kind,),
        compare=integer_form,
        cassandra_fast=None,
        parse=_parse_integer(kind),
        lenient=int,
        postgres_fast={"int2": None, "int4": None, "int8": None},
        key_filters={
            **dict.fromkeys(
                ("int2", "int4", "int8"), KeyFilter("{c} = {x}::int8", int_param(INT8))
            ),
            "numeric": KeyFilter("{c} = {x}::numeric", int_param(None)),
        },
        postgres_types={
            "smallint": ("smallint",),
            "int": ("integer",),
            "bigint": ("bigint",),
        }.get(kind, ()),
    )


_FINITE = "({v} + 0.0 if {v} - {v} == 0 else special_float({v}))"

CODECS = (
    *(_integer_codec(kind) for kind in ("tinyint", "smallint", "int", "bigint", "counter")),
    _integer_codec("varint"),
    Codec(
        names=("decimal",),
        compare=_decimal,
        cassandra_fast=decimal_form,
        cassandra_inline="decimal_form({v})",
        parse=_parse_decimal,
        lenient=decimal.Decimal,
        display=_display_decimal,
        target=_decimal_target,
        postgres_forms={"numeric": ("@decimal", 130000)},  # trim_scale()
        cassandra_bytes=AS_TEXT,
        byte_forms={"numeric": _TEXT_OF_NUMERIC},
        postgres_fast={"numeric": decimal_form, "@decimal": None},
        postgres_inline={"numeric": "decimal_form({v})"},
        key_filters={"numeric": KeyFilter("{c} = {x}::numeric", guard(strings))},
        postgres_types=("numeric",),
    ),
    Codec(
        names=("float",),
        compare=_float32,
        cassandra_fast=finite_or_special,  # the driver's float is the exact 32-bit value
        cassandra_inline=_FINITE,
        parse=_parse_float("float"),
        lenient=float,
        display=_shortest_float32,
        # as float8: the exact 32-bit value, no rounding in Python
        postgres_forms={"float4": ("@f32", 0)},
        cassandra_bytes="floatasblob({})",  # IEEE 754 big-endian, as float4send
        byte_forms={"float4": ("float4send({})", 0)},
        postgres_fast={"float4": round_float32, "@f32": finite_or_special},
        postgres_inline={"float4": "round_float32({v})", "@f32": _FINITE},
        key_filters={"float4": KeyFilter("{c} = {x}::float4", guard(float_param))},
        postgres_types=("real",),
    ),
    Codec(
        names=("double",),
        compare=_double,
        cassandra_fast=finite_or_special,
        cassandra_inline=_FINITE,
        parse=_parse_float("double"),
        lenient=float,
        postgres_fast={"float8": finite_or_special, "float4": finite_or_special},
        cassandra_bytes="doubleasblob({})",
        byte_forms={"float8": ("float8send({})", 0)},
        postgres_inline={"float8": _FINITE},
        key_filters={"float8": KeyFilter("{c} = {x}::float8", guard(float_param))},
        postgres_types=("double precision",),
    ),
)
