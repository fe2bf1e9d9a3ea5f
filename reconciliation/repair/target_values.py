"""Cassandra driver values as the target's column types expect them (repair's upsert), and as
JSON (audit entries, display).  What is particular to a CQL type (a duration into an
interval, a decimal's digits) is its codec's ``target`` (``engine/codecs/``); this module
handles the target's shapes: jsonb, arrays, collections in text.
"""

from __future__ import annotations

import decimal
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Json, Jsonb

from reconciliation.engine.codecs import CODECS, CannotConvert, plain, text_of
from reconciliation.engine.codecs.base import TEXT_TARGETS, into_target
from reconciliation.engine.cqltypes import CqlType

__all__ = ["CannotConvert", "TargetColumn", "plain", "text_of", "to_json", "to_target"]


@dataclass(frozen=True)
class TargetColumn:
    name: str
    data_type: str  # information_schema's data_type, e.g. "ARRAY", "jsonb", "integer"
    udt_name: str  # e.g. "_text", "jsonb", "int4", "timestamptz"


def _is_udt(value: Any) -> bool:
    return isinstance(value, tuple) and hasattr(value, "_fields")


def _sorted(values: Iterable[Any]) -> list[Any]:
    items = list(values)
    try:
        return sorted(items)
    except TypeError:
        return sorted(items, key=lambda v: json.dumps(to_json(v), sort_keys=True))


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


def to_target(value: Any, column: TargetColumn, ctype: CqlType | None = None) -> Any:
    """``value`` (as the Cassandra driver returns it, of CQL type ``ctype`` when known) in
    the form the target column takes."""
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
        element_type = ctype.params[0] if ctype is not None and ctype.params else None
        return [to_target(item, element, element_type) for item in items]
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        if not value:
            return None  # an empty Cassandra collection is NULL
        if udt in TEXT_TARGETS:
            return json.dumps(to_json(value), ensure_ascii=False, separators=(",", ":"))
        raise CannotConvert(
            f"Column {column.name}: a collection or UDT needs a jsonb, json, array or text "
            f"column, not {column.udt_name}."
        )
    codec = CODECS.get(ctype.name) if ctype is not None else None
    try:
        return codec.target(value, udt) if codec is not None else into_target(value, udt)
    except CannotConvert as exc:
        raise CannotConvert(f"Column {column.name}: {exc}") from exc
    except (TypeError, ValueError, decimal.InvalidOperation) as exc:
        raise CannotConvert(
            f"Column {column.name}: {value!r} does not fit type {column.udt_name}: {exc}"
        ) from exc
