"""Parse a primary key from its text (a URL, a stored mismatch) against the key columns' CQL
types, with every range Cassandra enforces, before anything is written anywhere.

``reconciliation.engine.keys.parse_key_part`` turns canonical text back into driver values;
it trusts Python's parsers, which accept more than Cassandra does (``int("1_000")``, a
20-digit bigint, ``uuid.UUID("{...}")``, ``Decimal("NaN")``).  A key that gets past it fails
only in the stores, after an audit entry was written.  ``parse_key_for_columns`` refuses all
of that up front with ``InvalidKey``, a ``BadKey`` that names the column, so the API can
answer 400 with ``fields`` = ``{"primary_key": [...], column: [problem]}``.

Accepted text per type (the canonical forms of ``engine.keys`` and a little more):
tinyint/smallint/int/bigint/counter: an optional ``-`` and decimal digits, within the type's
signed width · varint: the same, at most ``MAX_VARINT_DIGITS`` digits · decimal: a finite
decimal number (exponent allowed), at most ``MAX_DECIMAL_DIGITS`` digits · float/double:
finite, within the type's range · uuid: ``8-4-4-4-12`` hex · timeuuid: the same, version 1 ·
timestamp: ISO 8601 (``Z`` or an offset; no zone means UTC) or milliseconds since the epoch ·
date: ``YYYY-MM-DD`` · time: ``HH:MM:SS[.fffffffff]`` · inet: an IPv4 or IPv6 address ·
blob: hex, with or without ``0x`` · boolean: ``true`` / ``false`` · ascii: ASCII only ·
text/varchar: any text.  No type takes a NUL character, and no key part is longer than
Cassandra's 65,535-byte limit.
"""

from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import math
import re
import uuid
from collections.abc import Sequence
from typing import Any

from reconciliation.engine.keys import TEXT_TYPES, BadKey, split_key

INTEGER_RANGES = {
    "tinyint": 8,
    "smallint": 16,
    "int": 32,
    "bigint": 64,
    "counter": 64,
}
MAX_VARINT_DIGITS = 1000
MAX_DECIMAL_DIGITS = 1000
MAX_KEY_BYTES = 65535
FLOAT_MAX = {"float": 3.4028234663852886e38, "double": 1.7976931348623157e308}
_INTEGER = re.compile(r"-?[0-9]+\Z")
_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\Z")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_DATE = re.compile(r"-?[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_TIME = re.compile(r"([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?\Z")
_HEX = re.compile(r"(?:0[xX])?([0-9a-fA-F]*)\Z")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class InvalidKey(BadKey):
    """A key part that is not a valid value of its column's type; ``column`` names it."""

    code = "invalid_key"

    def __init__(self, column: str, message: str) -> None:
        super().__init__(f"Column {column!r}: {message}")
        self.column = column
        self.problem = message

    @property
    def fields(self) -> dict[str, list[str]]:
        """The API's ``fields``: the key as a whole (the URL's ``primary_key``) and the column."""
        return {"primary_key": [str(self)], self.column: [self.problem]}


def _integer(text: str, kind: str) -> int:
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
    bits = INTEGER_RANGES[kind]
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if not low <= value <= high:
        raise ValueError(f"{value} is out of range for {kind} ({low} to {high}).")
    return value


def _decimal(text: str) -> decimal.Decimal:
    if not _DECIMAL.match(text):
        raise ValueError(f"{text!r} is not a finite decimal number.")
    value = decimal.Decimal(text)
    if len(value.as_tuple().digits) > MAX_DECIMAL_DIGITS:
        raise ValueError(f"a decimal key may have at most {MAX_DECIMAL_DIGITS} digits.")
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int) or not -(2**31) <= -exponent <= 2**31 - 1:
        raise ValueError(f"{text!r} has a scale out of range for decimal.")
    return value


def _float(text: str, kind: str) -> float:
    if not _DECIMAL.match(text):
        raise ValueError(f"{text!r} is not a finite number.")
    value = float(text)
    if not math.isfinite(value) or abs(value) > FLOAT_MAX[kind]:
        raise ValueError(f"{text!r} is out of range for {kind}.")
    return value


def _uuid(text: str, kind: str) -> uuid.UUID:
    if not _UUID.match(text):
        raise ValueError(f"{text!r} is not a UUID (8-4-4-4-12 hexadecimal digits).")
    value = uuid.UUID(text)
    if kind == "timeuuid" and value.version != 1:
        raise ValueError(f"{text!r} is not a time-based (version 1) UUID.")
    return value


def _timestamp(text: str) -> dt.datetime:
    if _INTEGER.match(text):  # milliseconds since the epoch, as CQL also takes
        millis = _integer(text, "bigint")
        try:
            return _EPOCH + dt.timedelta(milliseconds=millis)
        except OverflowError as exc:
            raise ValueError(f"{text} ms since the epoch is out of range.") from exc
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an ISO 8601 timestamp.") from exc
    value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    try:
        value.astimezone(dt.UTC)
    except OverflowError as exc:
        raise ValueError(f"{text!r} is out of range for timestamp.") from exc
    return value


def _date(text: str) -> dt.date:
    if not _DATE.match(text):
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD).")
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid date: {exc}.") from exc


def _time(text: str) -> dt.time:
    match = _TIME.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a time of day (HH:MM:SS[.fffffffff]).")
    hours, minutes, seconds = (int(g) for g in match.groups()[:3])
    fraction = (match.group(4) or "").ljust(9, "0")
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"{text!r} is not a valid time of day.")
    if fraction[6:].strip("0"):  # the driver binds microseconds
        raise ValueError(f"{text!r} has more precision than microseconds.")
    return dt.time(hours, minutes, seconds, int(fraction[:6]))


def _blob(text: str) -> bytes:
    match = _HEX.match(text)
    if not match or len(match.group(1)) % 2:
        raise ValueError(f"{text[:40]!r} is not hexadecimal bytes.")
    return bytes.fromhex(match.group(1))


def _inet(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError as exc:
        raise ValueError(f"{text[:60]!r} is not an IPv4 or IPv6 address.") from exc


def _boolean(text: str) -> bool:
    if text not in {"true", "false"}:
        raise ValueError(f"{text[:20]!r} is not true or false.")
    return text == "true"


def parse_key_value(text: str, cql_type: str, column: str) -> Any:
    """One key column's text as the value the driver binds; ``InvalidKey`` naming ``column``."""
    kind = cql_type.strip().lower()
    try:
        if "\x00" in text:
            raise ValueError("NUL characters are not allowed in a key.")
        if len(text.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
            raise ValueError(f"a key part may be at most {MAX_KEY_BYTES} bytes.")
        if kind in TEXT_TYPES:
            if kind == "ascii" and not text.isascii():
                raise ValueError("an ascii key may hold ASCII characters only.")
            text.encode("utf-8")  # lone surrogates cannot be stored
            return text
        if kind in INTEGER_RANGES or kind == "varint":
            return _integer(text, kind)
        if kind == "decimal":
            return _decimal(text)
        if kind in FLOAT_MAX:
            return _float(text, kind)
        if kind in {"uuid", "timeuuid"}:
            return _uuid(text, kind)
        if kind == "timestamp":
            return _timestamp(text)
        if kind == "date":
            return _date(text)
        if kind == "time":
            return _time(text)
        if kind == "inet":
            return _inet(text)
        if kind == "blob":
            return _blob(text)
        if kind == "boolean":
            return _boolean(text)
    except UnicodeEncodeError as exc:
        raise InvalidKey(column, "the key is not valid UTF-8 text.") from exc
    except (ValueError, decimal.InvalidOperation, OverflowError) as exc:
        raise InvalidKey(column, str(exc)) from exc
    raise InvalidKey(column, f"keys of type {kind} are not supported.")


def parse_key_for_columns(key_text: str, columns: Sequence[tuple[str, str]]) -> list[Any]:
    """Every key column's value from ``key_text`` (one text, or a JSON array of texts for a
    composite key); ``columns`` are (name, CQL type) in key order.  ``BadKey`` for a malformed
    or wrong-arity key, ``InvalidKey`` (naming the column) for a bad value."""
    if "\x00" in key_text:
        raise BadKey("The primary key must not contain NUL characters.")
    parts = split_key(key_text, len(columns))
    return [
        parse_key_value(part, kind, name) for part, (name, kind) in zip(parts, columns, strict=True)
    ]
