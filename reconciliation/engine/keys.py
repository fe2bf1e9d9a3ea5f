"""The text form of a row's primary key, as stored in ``Mismatch.primary_key_value`` and
taken by the erasure URL.

A one-column key is the canonical text of its value (``user-123``); a composite key is a
JSON array of the canonical texts in key order (``["acme","2025-11-25"]``).  Canonical text
per CQL type: text as is; integers in decimal; uuid lower-case with hyphens; timestamp ISO
8601 UTC with milliseconds and ``Z``; date ``YYYY-MM-DD``; boolean ``true``/``false``;
decimal without an exponent or trailing zeros; blob lower-case hex.
"""

from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import json
import uuid
from collections.abc import Sequence
from typing import Any

from reconciliation.engine.canonical import INTEGER_TYPES, TEXT_TYPES


def strip_zeros(number: decimal.Decimal) -> decimal.Decimal:
    """A finite decimal without trailing zeros, exactly (``normalize()`` would round to the
    context's 28 digits)."""
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    end = len(digits)
    while end > 1 and digits[end - 1] == 0:
        end -= 1
    return decimal.Decimal((sign, digits[:end], exponent + len(digits) - end))


class BadKey(ValueError):
    """A key text that does not fit the table's key columns."""


def _text_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(timespec="milliseconds") + "Z"
    if isinstance(value, decimal.Decimal):
        text = format(strip_zeros(value), "f") if value.is_finite() else str(value)
        return "0" if text in {"-0", "0"} else text
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if hasattr(value, "date") and type(value).__name__ == "Date":  # cassandra.util.Date
        return str(value.date())
    return str(value)


def format_key(values: Sequence[Any]) -> str:
    texts = [_text_of(v) for v in values]
    if len(texts) == 1:
        return texts[0]
    return json.dumps(texts, ensure_ascii=False, separators=(",", ":"))


def split_key(text: str, arity: int) -> list[str]:
    """The key's column texts, checked against the number of key columns."""
    if arity == 1:
        if text == "":
            raise BadKey("The primary key is empty.")
        return [text]
    try:
        parts = json.loads(text)
    except ValueError as exc:
        raise BadKey(
            f"This table has a composite key of {arity} columns: send a JSON array of "
            f"{arity} strings, URL-encoded."
        ) from exc
    if (
        not isinstance(parts, list)
        or len(parts) != arity
        or not all(isinstance(p, str) for p in parts)
    ):
        raise BadKey(f"The key must be a JSON array of exactly {arity} strings, in key order.")
    return parts


def parse_key_part(text: str, cql_type: str) -> Any:
    """A key column's canonical text back to the Python value the driver binds."""
    kind = cql_type.strip().lower()
    try:
        if kind in TEXT_TYPES:
            return text
        if kind in INTEGER_TYPES:
            return int(text)
        if kind in {"uuid", "timeuuid"}:
            return uuid.UUID(text)
        if kind == "timestamp":
            value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        if kind == "date":
            return dt.date.fromisoformat(text)
        if kind == "decimal":
            return decimal.Decimal(text)
        if kind in {"float", "double"}:
            return float(text)
        if kind == "boolean":
            if text not in {"true", "false"}:
                raise ValueError(text)
            return text == "true"
        if kind == "blob":
            return bytes.fromhex(text)
        if kind == "inet":
            return str(ipaddress.ip_address(text))
        if kind == "time":
            return dt.time.fromisoformat(text)
    except (ValueError, decimal.InvalidOperation) as exc:
        raise BadKey(f"{text!r} is not a valid {kind} value.") from exc
    raise BadKey(f"Keys of type {kind} are not supported.")
