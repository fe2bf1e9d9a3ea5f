"""The canonical form as people and checksums see it: compare forms (``canonical.py``) turned
into the documented readable values (``display_value``), the canonical JSON encoding of a row
and its SHA-256 checksum, and the key texts (``key_text``, ``primary_key_text``).
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

# The compare forms count from these epochs and pack floats so: one definition, in canonical.
from reconciliation.engine.canonical import (
    _EPOCH,
    _EPOCH_ORDINAL,
    _FLOAT32,
    column_canonicalizer,
)
from reconciliation.engine.cqltypes import CqlType
from reconciliation.engine.keys import format_key
from reconciliation.engine.unreadable import is_unreadable

# -- the canonical (readable, documented) form --------------------------------------------------


def _shortest_float32(value: float) -> float:
    for digits in range(6, 10):
        shortest = float(f"{value:.{digits}g}")
        if _FLOAT32.unpack(_FLOAT32.pack(shortest))[0] == value:
            return shortest
    return value


def _display_timestamp(ms: int) -> str:
    try:
        return (_EPOCH + dt.timedelta(milliseconds=ms)).isoformat(timespec="milliseconds") + "Z"
    except OverflowError:
        return str(ms)


def _display_date(days: int) -> str:
    try:
        return dt.date.fromordinal(days + _EPOCH_ORDINAL).isoformat()
    except (ValueError, OverflowError):
        return str(days)


def _display_time(micros: int) -> str:
    seconds, micro = divmod(micros, 1_000_000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{hour:02d}:{minute:02d}:{second:02d}.{micro:06d}"


def _display_decimal(text: str) -> str:
    try:
        number = decimal.Decimal(text)
    except ArithmeticError:
        return text
    return format(number, "f") if number.is_finite() else text


_SIMPLE_DISPLAY: dict[str, Callable[[Any], Any]] = {
    "decimal": _display_decimal,
    "float": lambda v: _shortest_float32(v) if isinstance(v, float) else v,
    "uuid": lambda v: str(uuid.UUID(bytes=v)),
    "timeuuid": lambda v: str(uuid.UUID(bytes=v)),
    "timestamp": _display_timestamp,
    "date": _display_date,
    "time": _display_time,
    "blob": lambda v: v.hex(),
}


def key_text(value: Any) -> str:
    """The text of a canonical value used as a map key (and in ``primary_key_value``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def display_value(ctype: CqlType, value: Any) -> Any:
    """The canonical form (the table above) of a compare form."""
    if value is None or is_unreadable(value):
        return value
    name = ctype.name
    if name in _SIMPLE_DISPLAY:
        if name == "decimal" or not isinstance(value, str):
            return _SIMPLE_DISPLAY[name](value)
        return value  # NaN / Infinity of a float
    if name in {"list", "vector", "set"}:
        return [display_value(ctype.params[0], v) for v in value]
    if name == "tuple":
        return [display_value(t, v) for t, v in zip(ctype.params, value, strict=False)]
    if name == "map":
        pairs = {
            key_text(display_value(ctype.params[0], k)): display_value(ctype.params[1], v)
            for k, v in value.items()
        }
        return {k: pairs[k] for k in sorted(pairs)}
    if name == "udt":
        types = dict(ctype.fields)
        return {k: display_value(types[k], v) if k in types else v for k, v in value.items()}
    return value


# -- checksums and keys -----------------------------------------------------------------------


def canonical_json(names: Sequence[str], values: Sequence[Any]) -> str:
    """The documented canonical encoding of a row: a JSON object in column-name order."""
    return json.dumps(
        dict(zip(names, values, strict=True)),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def row_checksum(names: Sequence[str], values: Sequence[Any]) -> str:
    """SHA-256 (hex) of ``canonical_json`` of canonical values: the same on both sides for
    equal rows."""
    return hashlib.sha256(canonical_json(names, values).encode("utf-8")).hexdigest()


def display_row(names: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    """A row of canonical values as a person reads it (``Mismatch.cassandra_data``)."""
    return dict(zip(names, values, strict=True))


def primary_key_text(values: Sequence[Any]) -> str:
    """``Mismatch.primary_key_value`` from a key's canonical values (keys.format_key)."""
    return format_key([v if isinstance(v, str) else key_text(v) for v in values])


def to_canonical(ctype: CqlType, value: Any) -> Any:
    """One value, from either store, in canonical form."""
    return display_value(ctype, column_canonicalizer(ctype)(value))
