"""Parse a primary key from its text (a URL, a stored mismatch) against the key columns' CQL
types, with every range Cassandra enforces, before anything is written anywhere.

Each type's strict parse is its codec's (``engine/codecs/``).
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
a number within the type's range, or ``NaN``, ``Infinity``, ``-Infinity`` · uuid: ``8-4-4-4-12`` hex · timeuuid: the same, version 1 ·
timestamp: ISO 8601 (``Z`` or an offset; no zone means UTC) or milliseconds since the epoch ·
date: ``YYYY-MM-DD`` · time: ``HH:MM:SS[.fffffffff]`` · inet: an IPv4 or IPv6 address ·
blob: hex, with or without ``0x`` · boolean: ``true`` / ``false`` · ascii: ASCII only ·
text/varchar: any text.  No type takes a NUL character, and no key part is longer than
Cassandra's 65,535-byte limit.
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from typing import Any

from reconciliation.engine.codecs import codec_for
from reconciliation.engine.keys import BadKey, split_key

MAX_KEY_BYTES = 65535


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


def parse_key_value(text: str, cql_type: str, column: str) -> Any:
    """One key column's text as the value the driver binds (the codec's strict parse);
    ``InvalidKey`` naming ``column``."""
    kind = cql_type.strip().lower()
    try:
        parse = codec_for(kind).parse
    except KeyError:
        raise InvalidKey(column, f"keys of type {kind} are not supported.") from None
    try:
        if "\x00" in text:
            raise ValueError("NUL characters are not allowed in a key.")
        if len(text.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
            raise ValueError(f"a key part may be at most {MAX_KEY_BYTES} bytes.")
        return parse(text)
    except UnicodeEncodeError as exc:
        raise InvalidKey(column, "the key is not valid UTF-8 text.") from exc
    except (ValueError, decimal.InvalidOperation, OverflowError) as exc:
        raise InvalidKey(column, str(exc)) from exc


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
