"""Equality across type systems: every value, from either store, in one canonical form.

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
or none (``fastpaths.py``).  ``readable.display_value`` maps a compare form to the canonical
form above, one to one, so equal compare forms mean equal canonical forms and equal
checksums; it only runs for the rows a job reports.
"""

from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import json
import math
import re
import struct
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from reconciliation.engine.cqltypes import CqlType
from reconciliation.engine.unreadable import invalid

Converter = Callable[[Any], Any]

TEXT_TYPES = frozenset({"text", "varchar", "ascii"})
INTEGER_TYPES = frozenset({"tinyint", "smallint", "int", "bigint", "varint", "counter"})

_FLOAT32 = struct.Struct("<f")
_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_UTC = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_MILLISECOND = dt.timedelta(milliseconds=1)
_INF = math.inf


# -- compare forms of simple types, from any representation (the general path) ---------------


def _text(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _integer(value: Any) -> Any:
    if isinstance(value, bool):
        return invalid(value)
    if isinstance(value, int):
        return value
    try:
        number = decimal.Decimal(value.strip()) if isinstance(value, str) else value
        if isinstance(number, float) and not number.is_integer():
            return invalid(value)
        if isinstance(number, decimal.Decimal) and number != number.to_integral_value():
            return invalid(value)
        return int(number)
    except (ValueError, TypeError, ArithmeticError):
        return invalid(value)


def _decimal_form(number: decimal.Decimal) -> str:
    """A decimal's compare form: its text without exponent or trailing zeros (``1.10`` and
    ``1.1`` give ``1.1``), as PostgreSQL's ``trim_scale(x)::text`` writes it."""
    if not number:
        return "0"
    if not number.is_finite():
        return "NaN" if number.is_nan() else ("Infinity" if number > 0 else "-Infinity")
    text = format(number, "f")  # exact, whatever the digits (no context rounding)
    return text.rstrip("0").rstrip(".") if "." in text else text


def _decimal(value: Any) -> Any:
    try:
        if isinstance(value, bool):
            return invalid(value)
        if isinstance(value, decimal.Decimal):
            return _decimal_form(value)
        if isinstance(value, float):
            return _decimal_form(decimal.Decimal(repr(value)))
        return _decimal_form(decimal.Decimal(str(value).strip()))
    except (ValueError, ArithmeticError):
        return invalid(value)


def _special_float(value: float) -> str:
    if value != value:
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _finite_or_special(value: float) -> Any:
    # value - value is 0.0 for finite numbers only; + 0.0 turns -0.0 into 0.0.
    return value + 0.0 if value - value == 0 else _special_float(value)


def _to_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return value
    if isinstance(value, int | decimal.Decimal):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in {"nan", "infinity", "+infinity", "-infinity", "inf", "-inf"}:
            return float(text.replace("infinity", "inf"))
        try:
            return float(text)
        except ValueError:
            return None
    return None


def _double(value: Any) -> Any:
    number = _to_float(value)
    return invalid(value) if number is None else _finite_or_special(number)


def _float32(value: Any) -> Any:
    """The exact 32-bit float nearest the value (how Cassandra stores a float)."""
    number = _to_float(value)
    if number is None:
        return invalid(value)
    if number - number != 0:
        return _special_float(number)
    try:
        return _finite_or_special(_FLOAT32.unpack(_FLOAT32.pack(number))[0])
    except OverflowError:
        return _special_float(math.copysign(_INF, number))


def _round_float32(value: float) -> Any:
    if value - value != 0:
        return _special_float(value)
    return _FLOAT32.unpack(_FLOAT32.pack(value))[0] + 0.0


def _boolean(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false", "t", "f"}:
        return value.strip().lower() in {"true", "t"}
    return invalid(value)


def _uuid(value: Any) -> Any:
    """A uuid's compare form is its 16 bytes (as Cassandra serialises it)."""
    if isinstance(value, uuid.UUID):
        return value.bytes
    if isinstance(value, bytes) and len(value) == 16:
        return value
    try:
        return uuid.UUID(str(value).strip()).bytes
    except ValueError:
        return invalid(value)


def _timestamp_ms(value: dt.datetime) -> int:
    if value.tzinfo is None:
        return (value - _EPOCH) // _MILLISECOND
    return (value - _EPOCH_UTC) // _MILLISECOND


def _timestamp(value: Any) -> Any:
    """A timestamp's compare form is its epoch milliseconds (sub-milliseconds cut)."""
    if isinstance(value, dt.datetime):
        return _timestamp_ms(value)
    if isinstance(value, int) and not isinstance(value, bool):  # epoch milliseconds
        return value
    if isinstance(value, str):
        try:
            return _timestamp_ms(dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
        except ValueError:
            return invalid(value)
    if isinstance(value, dt.date):
        return _timestamp_ms(dt.datetime(value.year, value.month, value.day))
    return invalid(value)


def _date(value: Any) -> Any:
    """A date's compare form is its day number from 1970-01-01."""
    if isinstance(value, dt.datetime):
        return invalid(value)
    if isinstance(value, dt.date):
        return value.toordinal() - _EPOCH_ORDINAL
    days = getattr(value, "days_from_epoch", None)  # the driver's Date
    if isinstance(days, int):
        return days
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()).toordinal() - _EPOCH_ORDINAL
        except ValueError:
            return invalid(value)
    return invalid(value)


def _micros_of(value: dt.time) -> int:
    return ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond


def _time(value: Any) -> Any:
    """A time's compare form is its microseconds since midnight (nanoseconds cut)."""
    if isinstance(value, dt.time):
        return _micros_of(value)
    nanoseconds = getattr(value, "nanosecond_time", None)  # the driver's Time
    if isinstance(nanoseconds, int):
        return nanoseconds // 1000
    if isinstance(value, str):
        try:
            return _micros_of(dt.time.fromisoformat(value.strip()))
        except ValueError:
            return invalid(value)
    return invalid(value)


def _blob(value: Any) -> Any:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        text = value.strip().lower()
        for prefix in ("\\x", "0x"):
            if text.startswith(prefix):
                text = text[len(prefix) :]
        try:
            return bytes.fromhex(text)
        except ValueError:
            return invalid(value)
    return invalid(value)


def _inet(value: Any) -> Any:
    if isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        if value.network.prefixlen == value.max_prefixlen:
            return str(value.ip)
        return str(value)
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    text = str(value).strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        try:
            return _inet(ipaddress.ip_interface(text))
        except ValueError:
            return invalid(value)


_DURATION_FORM = re.compile(r"^(-?\d+)mo(-?\d+)d(-?\d+)ns$")


def _duration(value: Any) -> Any:
    """Months, days and nanoseconds, each kept apart (never 1 month = 30 days, nor 25 h =
    1 day 1 h): PostgreSQL's interval is read field by field (``postgres.py``)."""
    if hasattr(value, "months") and hasattr(value, "nanoseconds"):  # the driver's Duration
        return f"{value.months}mo{value.days}d{value.nanoseconds}ns"
    if isinstance(value, str) and _DURATION_FORM.match(value.strip()):
        return value.strip()
    # A timedelta has already folded the fields together: it cannot be compared.
    return invalid(value)


SIMPLE_CONVERTERS: dict[str, Converter] = {
    **dict.fromkeys(TEXT_TYPES, _text),
    **dict.fromkeys(INTEGER_TYPES, _integer),
    "decimal": _decimal,
    "float": _float32,
    "double": _double,
    "boolean": _boolean,
    "uuid": _uuid,
    "timeuuid": _uuid,
    "timestamp": _timestamp,
    "date": _date,
    "time": _time,
    "blob": _blob,
    "inet": _inet,
    "duration": _duration,
}


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
