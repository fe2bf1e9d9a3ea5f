"""Cassandra driver values as the target's column types expect them (repair's upsert), and as
JSON (audit entries, display)."""

from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import json
import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cassandra.util import Date, Duration, SortedSet, Time
from psycopg.types.json import Json, Jsonb

from reconciliation.engine.keys import strip_zeros

INTEGER_UDTS = {"int2", "int4", "int8"}
FLOAT_UDTS = {"float4", "float8"}
TEXT_UDTS = {"text", "varchar", "bpchar", "name", "citext"}


class CannotConvert(ValueError):
    """A Cassandra value that has no faithful form in the target column's type."""


@dataclass(frozen=True)
class TargetColumn:
    name: str
    data_type: str  # information_schema's data_type, e.g. "ARRAY", "jsonb", "integer"
    udt_name: str  # e.g. "_text", "jsonb", "int4", "timestamptz"


def plain(value: Any) -> Any:
    """The driver's own value types as standard Python ones."""
    if isinstance(value, Date):
        try:
            return value.date()
        except ValueError:  # outside Python's date range
            return value
    if isinstance(value, Time):
        return dt.time(value.hour, value.minute, value.second, value.nanosecond // 1000)
    if isinstance(value, SortedSet):
        return set(value)
    return value


def _is_udt(value: Any) -> bool:
    return isinstance(value, tuple) and hasattr(value, "_fields")


def _sorted(values: Iterable[Any]) -> list[Any]:
    items = list(values)
    try:
        return sorted(items)
    except TypeError:
        return sorted(items, key=lambda v: json.dumps(to_json(v), sort_keys=True))


def text_of(value: Any) -> str:
    """Canonical text of a scalar (keys.py's rules; datetimes keep microseconds if any)."""
    value = plain(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        spec = "milliseconds" if value.microsecond % 1000 == 0 else "microseconds"
        return value.isoformat(timespec=spec) + "Z"
    if isinstance(value, decimal.Decimal):
        # strip_zeros, not normalize(): that rounds to the context's 28 digits.
        if value.is_finite() and value.is_zero():
            return "0"
        text = format(strip_zeros(value) if value.is_finite() else value, "f")
        return "0" if text in {"-0", "0"} else text
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def to_json(value: Any) -> Any:
    """A JSON-safe copy of a value from either store (for jsonb, the audit log, display)."""
    value = plain(value)
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return str(value)
        if value == value.to_integral_value() and abs(value) < 2**53:
            return int(value)
        as_float = float(value)
        return as_float if decimal.Decimal(repr(as_float)) == value else text_of(value)
    if isinstance(value, Mapping):
        return {text_of(k): to_json(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return [to_json(v) for v in _sorted(value)]
    if _is_udt(value):
        return {name: to_json(getattr(value, name)) for name in value._fields}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return text_of(value)


def to_target(value: Any, column: TargetColumn) -> Any:
    """``value`` (as the Cassandra driver returns it) in the form the target column takes."""
    value = plain(value)
    udt = column.udt_name.lower()
    if value is None:
        return None
    if udt in {"json", "jsonb"}:
        wrapper = Jsonb if udt == "jsonb" else Json
        return wrapper(to_json(value))
    if column.data_type.upper() == "ARRAY":
        if isinstance(value, Mapping) or not isinstance(value, list | tuple | set | frozenset):
            raise CannotConvert(
                f"Column {column.name}: a {type(value).__name__} cannot go into an array column."
            )
        items = _sorted(value) if isinstance(value, set | frozenset) else list(value)
        element = TargetColumn(column.name, "", udt[1:] if udt.startswith("_") else udt)
        return [to_target(item, element) for item in items]
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        if not value:
            return None  # an empty Cassandra collection is NULL
        if udt in TEXT_UDTS:
            return json.dumps(to_json(value), ensure_ascii=False, separators=(",", ":"))
        raise CannotConvert(
            f"Column {column.name}: a collection or UDT needs a jsonb, json, array or text "
            f"column, not {column.udt_name}."
        )
    try:
        return _scalar_to_target(value, udt)
    except (TypeError, ValueError, decimal.InvalidOperation) as exc:
        raise CannotConvert(
            f"Column {column.name}: {value!r} does not fit type {column.udt_name}: {exc}"
        ) from exc


def _scalar_to_target(value: Any, udt: str) -> Any:
    if udt in TEXT_UDTS:
        return value if isinstance(value, str) else text_of(value)
    if udt in {"timestamptz", "timestamp"}:
        if not isinstance(value, dt.datetime):
            raise TypeError("not a timestamp")
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        aware = aware.astimezone(dt.UTC)
        return aware if udt == "timestamptz" else aware.replace(tzinfo=None)
    if udt == "date":
        if isinstance(value, dt.datetime):
            return value.date()
        if not isinstance(value, dt.date):
            raise TypeError("not a date")
        return value
    if udt in {"time", "timetz"}:
        if not isinstance(value, dt.time):
            raise TypeError("not a time")
        return value
    if udt == "uuid":
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    if udt in {"inet", "cidr"}:
        return ipaddress.ip_address(str(value))
    if udt == "bytea":
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        raise TypeError("not bytes")
    if udt in INTEGER_UDTS:
        if isinstance(value, bool) or int(value) != value:
            raise ValueError("not a whole number")
        return int(value)
    if udt == "numeric":
        if isinstance(value, bool):
            raise TypeError("not a number")
        return value if isinstance(value, decimal.Decimal) else decimal.Decimal(str(value))
    if udt in FLOAT_UDTS:
        if isinstance(value, bool):
            raise TypeError("not a number")
        return float(value)
    if udt == "bool":
        if not isinstance(value, bool):
            raise TypeError("not a boolean")
        return value
    if isinstance(value, Duration):
        return str(value)
    return value
