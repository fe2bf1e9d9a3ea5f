"""One codec per CQL type: every rule cdcrecon applies to a type's values, in one place.

``codec_for(name)`` gives a scalar type's ``Codec`` (``base.py`` says what each field is):
its compare form, canonical form, strict and lenient parse, repair's write and the scan's
fast paths.  The families live in ``numbers.py``, ``temporal.py`` and ``scalars.py``; the
containers (list, set, map, tuple, UDT, vector) are built from their elements' codecs in
``engine/canonical.py`` and ``engine/readable.py``.
"""

from __future__ import annotations

from typing import Any

from reconciliation.engine.codecs import numbers, scalars, temporal
from reconciliation.engine.codecs.base import (
    EPOCH,
    EPOCH_ORDINAL,
    EPOCH_UTC,
    MILLISECOND,
    CannotConvert,
    Codec,
    Converter,
    plain,
    strip_zeros,
    text_of,
)
from reconciliation.engine.unreadable import finite_days, finite_ms

CODECS: dict[str, Codec] = {
    name: codec
    for codec in (*numbers.CODECS, *temporal.CODECS, *scalars.CODECS)
    for name in codec.names
}
TEXT_TYPES = frozenset(scalars.TEXT_TYPES)
INTEGER_TYPES = frozenset({*numbers.INTEGER_BITS, "varint"})

# The names the inline expressions of the fast paths use (records.Codec compiles them).
INLINE_NAMESPACE: dict[str, Any] = {
    "decimal_form": numbers.decimal_form,
    "special_float": numbers.special_float,
    "round_float32": numbers.round_float32,
    "micros_of": temporal.micros_of,
    "blob_form": scalars.blob_form,
    "finite_ms": finite_ms,
    "finite_days": finite_days,
    "EPOCH": EPOCH,
    "EPOCH_UTC": EPOCH_UTC,
    "EPOCH_ORDINAL": EPOCH_ORDINAL,
    "MILLISECOND": MILLISECOND,
}

# information_schema's data types, as the CQL type whose codec reads them (erasure's
# fallback when Cassandra cannot tell a key's type).
POSTGRES_TO_CQL_TYPES: dict[str, str] = {
    pg: name for name, codec in CODECS.items() for pg in codec.postgres_types
}


def codec_for(name: str) -> Codec:
    """The codec of scalar CQL type ``name`` (``KeyError`` when it is not a scalar)."""
    return CODECS[name.strip().lower()]


__all__ = [
    "CODECS",
    "INLINE_NAMESPACE",
    "INTEGER_TYPES",
    "POSTGRES_TO_CQL_TYPES",
    "TEXT_TYPES",
    "CannotConvert",
    "Codec",
    "Converter",
    "codec_for",
    "plain",
    "strip_zeros",
    "text_of",
]
