"""Equality across type systems: every value, from either store, in one canonical form.

Each scalar type's rules are its codec's (``engine/codecs/``); this module builds the
containers' compare forms from their elements' codecs.

A Cassandra value (as the python driver returns it) and a PostgreSQL value (as psycopg
returns it: a native column, an array, or JSON decoded from jsonb) are *equal* when their
canonical forms are equal.  The canonical form is always read in terms of the **Cassandra
column type** and is made of JSON values only, so it is also what a person reads in
``Mismatch.cassandra_data`` / ``postgres_data``:

=====================================  =========================================================
Cassandra type                         canonical form
=====================================  =========================================================
text, varchar, ascii                   the string (``""`` is a value, not NULL)
tinyint … bigint, varint, counter      the integer (PostgreSQL ``numeric(…,0)`` too)
decimal                                string without exponent or trailing zeros (``"1.1"``)
float                                  the 32-bit value, as the shortest decimal that rounds
                                       back to it (``0.1``); NaN/±Inf as ``"NaN"``,
                                       ``"Infinity"``, ``"-Infinity"``; -0.0 is 0.0
double                                 the 64-bit value; the same specials (NaN equals NaN)
boolean                                ``true`` / ``false``
uuid, timeuuid                         lower-case hyphenated text (PG uuid, or text holding one)
timestamp                              ISO 8601 UTC at milliseconds: ``2025-11-25T10:00:00.123Z``
                                       (PG sub-millisecond parts truncated, like Cassandra;
                                       ``timestamp without time zone`` read as UTC)
date                                   ``YYYY-MM-DD``
time                                   ``HH:MM:SS.ffffff`` (microseconds)
blob                                   lower-case hex
inet                                   the address text (``::1``, ``10.0.0.1``)
duration                               ``<months>mo<days>d<nanoseconds>ns``: the three fields
                                       apart (PG ``interval`` read field by field, so 1 month
                                       is not 30 days and 25 h is not 1 day 1 h); a
                                       ``timedelta`` has lost them and equals no duration
list<T>, vector<T, n>                  array, in order
set<T>                                 array, sorted
map<K, V>                              object, keys as the canonical *text* of K, sorted
tuple<…>                               array, field by field
UDT                                    object, field by field in the type's field order
=====================================  =========================================================

NULL is ``null``.  An empty top-level collection is ``null`` (Cassandra cannot tell an empty
collection from NULL), so it equals NULL, ``{}`` or ``[]`` on the target.  A value that cannot
be read as the column's type (text that is not a uuid, ``infinity`` in a timestamp or date,
JSON of the wrong shape, anything a converter raises on) becomes ``"<invalid …>"`` with the
value as written: it equals no valid value of the type, so its row is a DATA_MISMATCH, and
the job counts it (``unreadable.count_unreadable``) instead of failing.  Timestamps and dates are
compared as epoch milliseconds and day numbers, so years past 9999 are still compared.

Equalities decided here: a ``decimal`` equals the same number at any scale (``1.10`` =
``1.1``, trailing zeros are cut exactly, never rounded); ``float``/``double`` NaN equals NaN
and -0.0 equals 0.0; ``time`` is compared at microseconds (PostgreSQL's precision) and
``timestamp`` at milliseconds (Cassandra's); ``duration`` keeps nanoseconds (a Cassandra
duration with sub-microsecond digits equals no interval).

**Keys** are compared by the same rule: two rows are the same row when their key columns'
compare forms are equal (``records.py``).

**Checksum**: SHA-256, as lower-case hex, of the UTF-8 bytes of
``json.dumps({column: canonical value, …}, sort_keys=True, separators=(",", ":"),
ensure_ascii=False, allow_nan=False)`` over the compared columns — a JSON object in
column-name order.  Equal rows give the same checksum on both sides (``readable.row_checksum``).

**Compare form.**  Scanning millions of rows, the engine does not build the readable form
for every value: each store's values first become a cheap *compare form* (a uuid is its
16 bytes, a timestamp its epoch milliseconds, a date its day number, a float the exact
32-bit value…), chosen per column and per store so that most values need one attribute read
or none (``fastpaths.py``, from each type's codec).  ``readable.display_value`` maps a compare form to the canonical
form above, one to one, so equal compare forms mean equal canonical forms and equal
checksums; it only runs for the rows a job reports.
"""

from __future__ import annotations

import decimal
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from reconciliation.engine.codecs import CODECS, INTEGER_TYPES, TEXT_TYPES, Converter
from reconciliation.engine.cqltypes import CqlType
from reconciliation.engine.unreadable import invalid

__all__ = ["INTEGER_TYPES", "SIMPLE_CONVERTERS", "TEXT_TYPES", "Converter", "canonicalizer"]

SIMPLE_CONVERTERS: dict[str, Converter] = {name: codec.compare for name, codec in CODECS.items()}


# -- containers ---------------------------------------------------------------------------------


def _sorted(values: list[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:  # mixed or unorderable compare forms (an invalid value, objects in a set)
        return sorted(values, key=repr)


def _maybe_json(value: Any) -> Any:
    # jsonb read as text (or a JSON array kept in a text column) is still a container.
    if isinstance(value, str | bytes):
        try:
            return json.loads(value, parse_float=decimal.Decimal)
        except ValueError:
            return value
    return value


def _is_sequence(value: Any) -> bool:
    return isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping)


def _sequence(element: Converter, ordered: bool) -> Converter:
    def convert(value: Any) -> Any:
        value = _maybe_json(value)
        if not _is_sequence(value):
            return invalid(value)
        items = [None if item is None else element(item) for item in value]
        return items if ordered else _sorted(items)

    return convert


def _map(key: Converter, value_converter: Converter) -> Converter:
    def convert(value: Any) -> Any:
        value = _maybe_json(value)
        if not isinstance(value, Mapping):
            return invalid(value)
        pairs = {key(k): None if v is None else value_converter(v) for k, v in value.items()}
        return {k: pairs[k] for k in _sorted(list(pairs))}

    return convert


def _tuple(elements: Sequence[Converter]) -> Converter:
    def convert(value: Any) -> Any:
        value = _maybe_json(value)
        if not _is_sequence(value):
            return invalid(value)
        items = list(value)
        if len(items) > len(elements):
            return invalid(value)
        items += [None] * (len(elements) - len(items))
        return [None if v is None else c(v) for c, v in zip(elements, items, strict=True)]

    return convert


def _udt(fields: Sequence[tuple[str, Converter]]) -> Converter:
    names = [name for name, _ in fields]

    def convert(value: Any) -> Any:
        value = _maybe_json(value)
        extra: dict[str, Any] = {}
        if isinstance(value, Mapping):
            raw = [value.get(name) for name in names]
            extra = {k: v for k, v in value.items() if k not in names}
        elif isinstance(value, tuple):  # the driver's namedtuple for an unregistered UDT
            raw = list(value) + [None] * (len(names) - len(value))
        else:
            raw = [getattr(value, name, None) for name in names]
        result = {
            name: None if v is None else c(v) for (name, c), v in zip(fields, raw, strict=True)
        }
        for k, v in extra.items():  # fields the type does not have: never equal
            result[f"<unknown field {k}>"] = invalid(v)
        return result

    return convert


def canonicalizer(ctype: CqlType) -> Converter:
    """A function from either store's value of a ``ctype`` column to its compare form.

    The general path: it accepts any representation (native, array, JSON, text).  It does
    not handle None (callers skip NULLs) nor empty top-level collections
    (``column_canonicalizer`` does).
    """
    if ctype.name in SIMPLE_CONVERTERS:
        return SIMPLE_CONVERTERS[ctype.name]
    if ctype.name in {"list", "vector"}:
        return _sequence(canonicalizer(ctype.params[0]), ordered=True)
    if ctype.name == "set":
        return _sequence(canonicalizer(ctype.params[0]), ordered=False)
    if ctype.name == "map":
        return _map(canonicalizer(ctype.params[0]), canonicalizer(ctype.params[1]))
    if ctype.name == "tuple":
        return _tuple([canonicalizer(p) for p in ctype.params])
    if ctype.name == "udt":
        return _udt([(name, canonicalizer(t)) for name, t in ctype.fields])
    raise ValueError(f"No equality rule for CQL type {ctype}")


def _nullable(ctype: CqlType, convert: Converter) -> Converter:
    """NULL stays NULL; an empty top-level collection becomes NULL."""
    if ctype.is_collection:

        def collection(value: Any) -> Any:
            if value is None:
                return None
            result = convert(value)
            return None if result == [] or result == {} else result

        return collection

    def simple(value: Any) -> Any:
        return None if value is None else convert(value)

    return simple


def column_canonicalizer(ctype: CqlType) -> Converter:
    """``canonicalizer`` for a whole column value: NULL kept, empty collections NULL."""
    return _nullable(ctype, canonicalizer(ctype))
