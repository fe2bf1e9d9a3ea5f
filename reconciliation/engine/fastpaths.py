"""Per-store fast paths to compare forms: what each store's driver hands over, converted
with one attribute read or nothing, for the types rows are mostly made of.

``canonical.py`` defines the compare forms and the general converters (``canonicalizer``);
this module picks, per column, the cheapest converter that gives the same forms from
Cassandra's driver values (``cassandra_converter``, as the engine selects them,
``cqlselect.select_column``) and from psycopg's (``postgres_converter``), and the same as
expression templates (``cassandra_inline``, ``postgres_inline``) for the record builders
``records.Codec`` compiles per table.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from reconciliation.engine.canonical import (
    _EPOCH,
    _EPOCH_ORDINAL,
    _EPOCH_UTC,
    _MILLISECOND,
    INTEGER_TYPES,
    TEXT_TYPES,
    Converter,
    _blob,
    _decimal_form,
    _finite_or_special,
    _micros_of,
    _nullable,
    _round_float32,
    _sorted,
    _special_float,
    column_canonicalizer,
)
from reconciliation.engine.cqltypes import CqlType
from reconciliation.engine.unreadable import finite_days, finite_ms

# -- per-store fast paths: one attribute read or nothing, for the types rows are made of -------

_CASSANDRA_FAST: dict[str, Converter | None] = {
    **dict.fromkeys(TEXT_TYPES | INTEGER_TYPES | {"boolean", "blob"}, None),
    "decimal": _decimal_form,
    "float": _finite_or_special,  # the driver's float is the exact 32-bit value
    "double": _finite_or_special,
    "uuid": attrgetter("bytes"),
    "timeuuid": attrgetter("bytes"),
    "timestamp": None,  # epoch milliseconds: cassandra.py selects blobAsBigint(...)
    "date": attrgetter("days_from_epoch"),
    "time": lambda v: v.nanosecond_time // 1000,
}

_POSTGRES_FAST: dict[tuple[str, str], Converter | None] = {
    **{(t, p): None for t in TEXT_TYPES for p in ("text", "varchar", "bpchar", "citext")},
    **{(t, p): None for t in INTEGER_TYPES for p in ("int2", "int4", "int8")},
    ("boolean", "bool"): None,
    ("blob", "bytea"): _blob,
    ("decimal", "numeric"): _decimal_form,
    ("float", "float4"): _round_float32,  # exact from binary COPY, not from text results
    ("double", "float8"): _finite_or_special,
    ("double", "float4"): _finite_or_special,
    ("uuid", "uuid"): attrgetter("bytes"),
    ("timeuuid", "uuid"): attrgetter("bytes"),
    # Columns the target's SELECT already turns into compare forms (postgres.py, "@…").
    ("uuid", "@bytes"): None,
    ("timeuuid", "@bytes"): None,
    ("timestamp", "@ms"): finite_ms,
    ("date", "@days"): finite_days,
    ("duration", "@interval"): None,
    ("decimal", "@decimal"): None,
    ("float", "@f32"): _finite_or_special,
    ("timestamp", "timestamptz"): lambda v: (v - _EPOCH_UTC) // _MILLISECOND,
    ("timestamp", "timestamp"): lambda v: (v - _EPOCH) // _MILLISECOND,
    ("date", "date"): lambda v: v.toordinal() - _EPOCH_ORDINAL,
    ("time", "time"): _micros_of,
}


def _fast_sequence(ctype: CqlType, element: Converter | None, ordered: bool) -> Converter:
    if element is None:

        def convert(value: Any) -> Any:
            return list(value) if ordered else _sorted(list(value))

    elif ordered:

        def convert(value: Any) -> Any:
            return [None if v is None else element(v) for v in value]

    else:

        def convert(value: Any) -> Any:
            return _sorted([None if v is None else element(v) for v in value])

    return _nullable(ctype, convert)


# The same fast paths as expressions over a non-NULL value ``{v}``, for the record builders
# the engine compiles per table (one Python call less per value, on millions of values).
_CASSANDRA_INLINE: dict[str, str] = {
    "decimal": "_decimal_form({v})",
    "float": "({v} + 0.0 if {v} - {v} == 0 else _special_float({v}))",
    "double": "({v} + 0.0 if {v} - {v} == 0 else _special_float({v}))",
    "date": "{v}.days_from_epoch",
    "time": "({v}.nanosecond_time // 1000)",
}
_POSTGRES_INLINE: dict[tuple[str, str], str] = {
    ("decimal", "numeric"): "_decimal_form({v})",
    ("float", "float4"): "_round_float32({v})",
    ("float", "@f32"): "({v} + 0.0 if {v} - {v} == 0 else _special_float({v}))",
    ("timestamp", "@ms"): "finite_ms({v})",
    ("date", "@days"): "finite_days({v})",
    ("double", "float8"): "({v} + 0.0 if {v} - {v} == 0 else _special_float({v}))",
    ("uuid", "uuid"): "{v}.bytes",
    ("timeuuid", "uuid"): "{v}.bytes",
    ("timestamp", "timestamptz"): "({v} - _EPOCH_UTC) // _MILLISECOND",
    ("timestamp", "timestamp"): "({v} - _EPOCH) // _MILLISECOND",
    ("date", "date"): "({v}.toordinal() - _EPOCH_ORDINAL)",
    ("time", "time"): "_micros_of({v})",
    ("blob", "bytea"): "_blob({v})",
}
INLINE_NAMESPACE: dict[str, Any] = {
    "_decimal_form": _decimal_form,
    "_special_float": _special_float,
    "_round_float32": _round_float32,
    "_micros_of": _micros_of,
    "_blob": _blob,
    "finite_ms": finite_ms,
    "finite_days": finite_days,
    "_EPOCH": _EPOCH,
    "_EPOCH_UTC": _EPOCH_UTC,
    "_EPOCH_ORDINAL": _EPOCH_ORDINAL,
    "_MILLISECOND": _MILLISECOND,
}


def cassandra_inline(ctype: CqlType) -> str | None:
    """``cassandra_converter`` as an expression template over a non-NULL ``{v}``, if any."""
    return _CASSANDRA_INLINE.get(ctype.name)


def postgres_inline(ctype: CqlType, pg_type: str) -> str | None:
    """``postgres_converter`` as an expression template over a non-NULL ``{v}``, if any."""
    return _POSTGRES_INLINE.get((ctype.name, pg_type))


# Top-level columns the scans already select as compare forms (cqlselect.select_column).
_CASSANDRA_SELECTED_AS_FORMS = {"timestamp", "uuid", "timeuuid"}


def cassandra_converter(ctype: CqlType) -> Converter | None:
    """The converter for a Cassandra column's values, as the engine selects them, to
    compare forms; None when they are compare forms already."""
    if ctype.name in _CASSANDRA_SELECTED_AS_FORMS:
        return None
    if ctype.name in _CASSANDRA_FAST:
        fast = _CASSANDRA_FAST[ctype.name]
        return None if fast is None else _nullable(ctype, fast)
    element = ctype.params[0] if ctype.params else None
    if ctype.name in {"list", "set"} and element is not None and element.name in _CASSANDRA_FAST:
        return _fast_sequence(ctype, _CASSANDRA_FAST[element.name], ctype.name == "list")
    return column_canonicalizer(ctype)


def postgres_converter(ctype: CqlType, pg_type: str) -> Converter | None:
    """The converter for a PostgreSQL column (``pg_type`` is its typname, ``_int4`` for an
    array) mapped to ``ctype``; None when psycopg's values are compare forms already."""
    if (ctype.name, pg_type) in _POSTGRES_FAST:
        fast = _POSTGRES_FAST[(ctype.name, pg_type)]
        return None if fast is None else _nullable(ctype, fast)
    element = ctype.params[0] if ctype.params else None
    if (
        ctype.name in {"list", "set", "vector"}
        and element is not None
        and pg_type.startswith("_")
        and (element.name, pg_type[1:]) in _POSTGRES_FAST
    ):
        return _fast_sequence(
            ctype, _POSTGRES_FAST[(element.name, pg_type[1:])], ctype.name != "set"
        )
    return column_canonicalizer(ctype)
