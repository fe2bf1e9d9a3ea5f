"""The text form of a row's primary key, as stored in ``Mismatch.primary_key_value`` and
taken by the erasure URL.

A one-column key is the canonical text of its value (``user-123``); a composite key is a
JSON array of the canonical texts in key order (``["acme","2025-11-25"]``).  Canonical text
per CQL type: text as is; integers in decimal; uuid lower-case with hyphens; timestamp ISO
8601 UTC with milliseconds and ``Z``; date ``YYYY-MM-DD``; boolean ``true``/``false``;
decimal without an exponent or trailing zeros; blob lower-case hex.
"""

from __future__ import annotations

import decimal
import json
from collections.abc import Sequence
from typing import Any

from reconciliation.engine.codecs import codec_for, strip_zeros, text_of

__all__ = ["BadKey", "format_key", "parse_key_part", "split_key", "strip_zeros"]


class BadKey(ValueError):
    """A key text that does not fit the table's key columns."""


def format_key(values: Sequence[Any]) -> str:
    texts = [text_of(v) for v in values]
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
    """A key column's canonical text back to the Python value the driver binds (the
    codec's lenient parse: cdcrecon wrote the text; ``keyparse`` checks what users send)."""
    kind = cql_type.strip().lower()
    try:
        parse = codec_for(kind).lenient
    except KeyError:
        raise BadKey(f"Keys of type {kind} are not supported.") from None
    try:
        return parse(text)
    except (ValueError, decimal.InvalidOperation) as exc:
        raise BadKey(f"{text!r} is not a valid {kind} value.") from exc
