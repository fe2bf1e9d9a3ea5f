"""A column's exact byte form, whatever its CQL type: a scalar's is its codec's
(``cassandra_bytes``, ``byte_forms``); a list or set of text is its JSON text, as Cassandra's
``toJson`` writes it (``["a", "b"]``, a set in its byte order) and PostgreSQL rebuilds it from a
``text[]``.  NULL and an empty collection are ``null`` on both sides (Cassandra cannot tell them
apart).  Each form is injective: equal bytes mean equal values, so only rows whose bytes
differ need decoding (``engine/rowhash.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciliation.engine.codecs import CODECS
from reconciliation.engine.cqltypes import CqlType

Forms = Mapping[str, tuple[str, int]]

_TEXT = {"text", "varchar", "ascii"}
_JSON_NULL = "'\\x6e756c6c'::bytea"  # null
_ELEMENTS = {
    "set": "(SELECT string_agg(to_json(e)::text, ', ' ORDER BY convert_to(e, 'UTF8')) "
    "FROM unnest({0}) AS e)",
    "list": "(SELECT string_agg(to_json(e)::text, ', ' ORDER BY n) "
    "FROM unnest({0}) WITH ORDINALITY AS u(e, n))",
}


def _json_array(kind: str) -> str:
    return (
        f"CASE WHEN coalesce(cardinality({{0}}), 0) = 0 THEN {_JSON_NULL} "
        "WHEN array_ndims({0}) <> 1 THEN '\\x00'::bytea "
        f"ELSE convert_to('[' || {_ELEMENTS[kind]} || ']', 'UTF8') END"
    )


# A byte form that is one call of these has that many bytes whenever it is not NULL.
_FIXED_WIDTH = {
    "boolsend(": 1,
    "int2send(": 2,
    "int4send(": 4,
    "float4send(": 4,
    "int8send(": 8,
    "float8send(": 8,
    "uuid_send(": 16,
}


def fixed_width(template: str) -> int | None:
    """The width of a target byte form that always has one (None: it varies)."""
    for prefix, width in _FIXED_WIDTH.items():
        if template.startswith(prefix) and template.endswith(")"):
            return width
    return None


def byte_form(ctype: CqlType) -> tuple[str, Forms] | None:
    """How Cassandra selects a column's byte form (a CQL template over "{}") and, per target
    type, the SQL giving the same bytes and the server version it needs; None: none."""
    codec = CODECS.get(ctype.name)
    if codec is not None:
        return None if codec.cassandra_bytes is None else (codec.cassandra_bytes, codec.byte_forms)
    if ctype.name in _ELEMENTS and ctype.params and ctype.params[0].name in _TEXT:
        forms = {pg: (_json_array(ctype.name), 0) for pg in ("_text", "_varchar")}
        return "textasblob(tojson({}))", forms
    return None
