"""What a codec is: everything cdcrecon knows about one CQL type, in one record.

A ``Codec`` gathers, for one CQL type, every rule the product applies to its values:

- ``compare``: any store's value (a driver value, a psycopg value, text, JSON) to the
  type's *compare form*, leniently (a value it cannot read becomes ``invalid(value)``);
- ``display``: a compare form to the documented canonical form (``canonical.py``'s table);
- ``parse``: a key's text to the value the driver binds, strictly, with Cassandra's ranges
  (``ValueError`` says what is wrong, in words an operator can act on);
- ``lenient``: canonical text (what cdcrecon itself wrote) back to a driver value;
- ``target``: a driver value into a target column of a given PostgreSQL type (repair's
  write; ``CannotConvert`` when it has no faithful form there);
- its exact byte form, for comparing equal rows without decoding them: ``cassandra_bytes``
  selects a cell's serialized bytes as a blob, ``byte_forms`` gives, per PostgreSQL type
  (and the server version it needs), the SQL that yields the same bytes from the target's
  value.  A byte form is *injective*: two values with equal bytes are equal, so a row whose
  hashes agree is equal; one whose hashes differ is decoded and judged by the rules above;
- the fast paths of a scan: how Cassandra selects it (``cassandra_select``), its driver
  value's compare form (``cassandra_fast``, ``None`` when the value already is one), how
  the target reads a column of each PostgreSQL type (``postgres_forms``) and the
  converters and inline expressions of each such read.

Canonical *text* (a key's text, a scalar in the audit log) is one function for every
type, ``text_of``, since it is decided by the value, not by the column.
"""

from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import struct
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cassandra.util import Date, Duration, SortedSet, Time

Converter = Callable[[Any], Any]

EPOCH = dt.datetime(1970, 1, 1)
EPOCH_UTC = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
MILLISECOND = dt.timedelta(milliseconds=1)
FLOAT32 = struct.Struct("<f")

INTEGER_TARGETS = frozenset({"int2", "int4", "int8"})
FLOAT_TARGETS = frozenset({"float4", "float8"})
TEXT_TARGETS = frozenset({"text", "varchar", "bpchar", "name", "citext"})


class CannotConvert(ValueError):
    """A Cassandra value that has no faithful form in the target column's type."""


def identity(value: Any) -> Any:
    return value


def strip_zeros(number: decimal.Decimal) -> decimal.Decimal:
    """A finite decimal without trailing zeros, exactly (``normalize()`` would round to the
    context's 28 digits)."""
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    end = len(digits)
    while end > 1 and digits[end - 1] == 0:
        end -= 1
    return decimal.Decimal((sign, digits[:end], exponent + len(digits) - end))


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


def text_of(value: Any) -> str:
    """The canonical text of a scalar, from either store: a key's part, a map key, a value
    written into a text column.  Timestamps at milliseconds (microseconds only if a target
    value has them), decimals with every digit and no trailing zeros, blobs in hex."""
    value = plain(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):  # as the canonical form spells it: NaN, Infinity, 0.0 for -0.0
        if value - value == 0:
            return repr(value + 0.0)
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        spec = "milliseconds" if value.microsecond % 1000 == 0 else "microseconds"
        return value.isoformat(timespec=spec) + "Z"
    if isinstance(value, decimal.Decimal):
        if value.is_finite() and value.is_zero():
            return "0"
        text = format(strip_zeros(value) if value.is_finite() else value, "f")
        return "0" if text == "-0" else text
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Duration):
        return f"{value.months}mo{value.days}d{value.nanoseconds}ns"
    return str(value)


def into_target(value: Any, udt: str) -> Any:
    """A scalar driver value as a target column of PostgreSQL type ``udt`` takes it, by the
    column's type (a codec's ``target`` handles what is special to its CQL type first).
    ``TypeError``/``ValueError`` when it does not fit."""
    if udt in TEXT_TARGETS:
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
    if udt in INTEGER_TARGETS:
        if isinstance(value, bool) or int(value) != value:
            raise ValueError("not a whole number")
        return int(value)
    if udt == "numeric":
        if isinstance(value, bool):
            raise TypeError("not a number")
        # Exact: a Decimal as it is, a float by its shortest repr; never a context's rounding.
        return value if isinstance(value, decimal.Decimal) else decimal.Decimal(str(value))
    if udt in FLOAT_TARGETS:
        if isinstance(value, bool):
            raise TypeError("not a number")
        return float(value)
    if udt == "bool":
        if not isinstance(value, bool):
            raise TypeError("not a boolean")
        return value
    return value  # a type with no rule of its own (an enum, money, ...): PostgreSQL casts it


def _no_key(text: str) -> Any:
    raise ValueError("a value of this type cannot be a key.")


@dataclass(frozen=True)
class Codec:
    """One CQL type's rules (see the module's docstring for each field)."""

    names: tuple[str, ...]
    compare: Converter
    cassandra_fast: Converter | None
    parse: Callable[[str], Any] = _no_key
    lenient: Callable[[str], Any] = _no_key
    display: Converter = identity
    target: Callable[[Any, str], Any] = into_target
    cassandra_select: str | None = None  # a CQL template over "{}" selecting the compare form
    bind_selected: Converter = identity  # that selected form back to a driver value
    cassandra_inline: str | None = None  # cassandra_fast as an expression over "{v}"
    # PostgreSQL type -> (how the target's SELECT reads it, the server version it needs).
    postgres_forms: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    # How the target's value, as read ("@ms", "int4", ...), becomes the compare form
    # (None: it is one); a read it lacks takes the general ``compare``.
    postgres_fast: Mapping[str, Converter | None] = field(default_factory=dict)
    postgres_inline: Mapping[str, str] = field(default_factory=dict)
    # The exact byte form (see the module's docstring): a CQL template over "{}" selecting
    # the serialized cell as a blob, and per PostgreSQL type (SQL over "{}" yielding the same
    # bytea, the server version it needs).
    cassandra_bytes: str | None = None
    byte_forms: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    # The target's lookup predicate of a key column, by its PostgreSQL type (``lookup.py``);
    # a type it lacks is found by a scan of the range instead.
    key_filters: Mapping[str, Any] = field(default_factory=dict)
    # information_schema data types that hold the type natively (erasure's fallback when
    # Cassandra cannot tell a key's type).
    postgres_types: tuple[str, ...] = ()
