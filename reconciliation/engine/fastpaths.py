"""Per-store fast paths to compare forms: what each store's driver hands over, converted
with one attribute read or nothing, as each type's codec says (``codecs/``).

``cassandra_converter`` picks a Cassandra column's converter, as the engine selects it
(``cqlselect.select_column``); ``postgres_converter`` a target column's, as the target reads
it (``schema.read_as``); ``cassandra_inline`` and ``postgres_inline`` give the same as
expression templates for the record builders ``records.Codec`` compiles per table.  A type
or a read with no fast path takes the general converter (``canonical.canonicalizer``).
"""

from __future__ import annotations

from typing import Any

from reconciliation.engine.canonical import _nullable, _sorted, column_canonicalizer
from reconciliation.engine.codecs import CODECS, INLINE_NAMESPACE, Converter
from reconciliation.engine.cqltypes import CqlType

__all__ = [
    "INLINE_NAMESPACE",
    "cassandra_converter",
    "cassandra_inline",
    "postgres_converter",
    "postgres_inline",
]

_MISSING = object()


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


def cassandra_inline(ctype: CqlType) -> str | None:
    """``cassandra_converter`` as an expression template over a non-NULL ``{v}``, if any."""
    codec = CODECS.get(ctype.name)
    if codec is None or codec.cassandra_select is not None:
        return None
    return codec.cassandra_inline


def postgres_inline(ctype: CqlType, pg_type: str) -> str | None:
    """``postgres_converter`` as an expression template over a non-NULL ``{v}``, if any."""
    codec = CODECS.get(ctype.name)
    return None if codec is None else codec.postgres_inline.get(pg_type)


def cassandra_converter(ctype: CqlType) -> Converter | None:
    """The converter for a Cassandra column's values, as the engine selects them, to
    compare forms; None when they are compare forms already."""
    codec = CODECS.get(ctype.name)
    if codec is not None:
        if codec.cassandra_select is not None or codec.cassandra_fast is None:
            return None  # selected as its compare form, or the driver's value is one
        return _nullable(ctype, codec.cassandra_fast)
    element = CODECS.get(ctype.params[0].name) if ctype.params else None
    if ctype.name in {"list", "set"} and element is not None:
        # Elements are driver values: a timestamp in a list is a datetime, not milliseconds.
        return _fast_sequence(ctype, element.cassandra_fast, ctype.name == "list")
    return column_canonicalizer(ctype)


def postgres_converter(ctype: CqlType, pg_type: str) -> Converter | None:
    """The converter for a PostgreSQL column (``pg_type`` is how the target reads it: its
    typname, ``_int4`` for an array, or a compare form such as ``@ms``) mapped to
    ``ctype``; None when psycopg's values are compare forms already."""
    codec = CODECS.get(ctype.name)
    if codec is not None:
        fast = codec.postgres_fast.get(pg_type, _MISSING)
        if fast is _MISSING:
            return column_canonicalizer(ctype)
        return None if fast is None else _nullable(ctype, fast)  # type: ignore[arg-type]
    element = CODECS.get(ctype.params[0].name) if ctype.params else None
    if ctype.name in {"list", "set", "vector"} and element is not None and pg_type[:1] == "_":
        fast = element.postgres_fast.get(pg_type[1:], _MISSING)
        if fast is not _MISSING:
            return _fast_sequence(ctype, fast, ctype.name != "set")  # type: ignore[arg-type]
    return column_canonicalizer(ctype)
