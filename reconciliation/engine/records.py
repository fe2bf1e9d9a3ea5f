"""Rows of either store as compact, comparable records ``(token, key bytes, row bytes)``.

The key and row bytes are ``marshal`` (version 0) dumps of the values' compare forms
(``canonical.py``): version 0 writes no references and no interning flags, so equal values
always give equal bytes, and comparing two rows is one ``bytes`` comparison.  The token
orders records like Cassandra orders partitions: for a source row it is Cassandra's own
``token(pk)``, for a target row it is computed here (``fast_token_function``) by serialising
the partition key as Cassandra does and hashing it with the driver's C Murmur3.
"""

from __future__ import annotations

import marshal
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from cassandra.cmurmur3 import murmur3

from reconciliation.engine.canonical import (
    INLINE_NAMESPACE,
    Converter,
    cassandra_converter,
    cassandra_inline,
    display_row,
    display_value,
    postgres_converter,
    postgres_inline,
    row_checksum,
)
from reconciliation.engine.schema import Layout

MIN_TOKEN = -(2**63)
MAX_TOKEN = 2**63 - 1
MARSHAL_VERSION = 0  # no references nor interning flags: the same value, the same bytes

TokenFunction = Callable[[Sequence[Any]], "int | None"]

_INT = struct.Struct(">i")
_BIGINT = struct.Struct(">q")
_DATE = struct.Struct(">I")
_LENGTH = struct.Struct(">H")


def _utf8(value: str) -> bytes:
    return value.encode("utf-8")


def _uuid_bytes(value: bytes) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError("not a uuid")
    return value


def _date_bytes(days: int) -> bytes:
    return _DATE.pack(days + 2**31)


# How Cassandra serialises a partition key column, from its compare form.
_SERIALIZERS: dict[str, Callable[[Any], bytes]] = {
    "text": _utf8,
    "varchar": _utf8,
    "ascii": _utf8,
    "int": _INT.pack,
    "bigint": _BIGINT.pack,
    "counter": _BIGINT.pack,
    "timestamp": _BIGINT.pack,
    "uuid": _uuid_bytes,
    "timeuuid": _uuid_bytes,
    "date": _date_bytes,
}


def murmur3_token(routing_key: bytes) -> int:
    """Cassandra's Murmur3Partitioner token of a serialised partition key."""
    token = int(murmur3(routing_key))
    return MAX_TOKEN if token == MIN_TOKEN else token


def fast_token_function(
    layout: Layout, fallback: TokenFunction | None = None
) -> TokenFunction | None:
    """The token of a key's compare forms, for partition keys made of text, integer,
    timestamp, uuid and date columns (None for other key types).  A value that does not
    serialise (an invalid one) goes to ``fallback``, or has no token."""
    serializers = []
    for column in layout.partition:
        serializer = _SERIALIZERS.get(column.cql_type.name)
        if serializer is None:
            return None
        serializers.append(serializer)
    single = serializers[0] if len(serializers) == 1 else None

    def token(compare_forms: Sequence[Any]) -> int | None:
        try:
            if single is not None:
                return murmur3_token(single(compare_forms[0]))
            parts = [f(v) for f, v in zip(serializers, compare_forms, strict=False)]
            return murmur3_token(b"".join(_LENGTH.pack(len(p)) + p + b"\x00" for p in parts))
        except (AttributeError, TypeError, struct.error, OverflowError):
            return None if fallback is None else fallback(compare_forms)

    return token


class Codec:
    """Rows of either store to records ``(token, key bytes, row bytes)``, and back."""

    def __init__(
        self,
        layout: Layout,
        token_function: Callable[
            [Callable[[Sequence[Any]], Sequence[Any]]], Callable[[Sequence[Any]], int | None]
        ],
    ) -> None:
        self.layout = layout
        self.names = layout.names
        self.key_size = len(layout.key)
        self.partition_size = len(layout.partition)
        self._cassandra = _active(cassandra_converter(c.cql_type) for c in layout.columns)
        self._postgres = _active(
            postgres_converter(c.cql_type, c.pg_read_as) for c in layout.columns
        )
        self._types = [c.cql_type for c in layout.columns]
        self._token = token_function(self.display_key)
        self.cassandra_record = self._compile("cassandra")
        self.postgres_record = self._compile("postgres")

    def _compile(self, side: str) -> Callable[[Sequence[Any]], tuple[int, bytes, bytes]]:
        """A record builder for this table's columns, with each column's conversion written
        inline (``canonical.*_inline``): the hot loop of a scan runs it once per row.

        Cassandra rows are ``(token, *columns)``; PostgreSQL rows are ``(*columns)`` and their
        token is computed from the key's compare forms.
        """
        namespace: dict[str, Any] = {
            **INLINE_NAMESPACE,
            "_dumps": marshal.dumps,
            "_token": self._token,
            "_MIN_TOKEN": MIN_TOKEN,
        }
        expressions = []
        for index, column in enumerate(self.layout.columns):
            value = f"v{index}"
            if side == "cassandra":
                inline = cassandra_inline(column.cql_type)
                convert = cassandra_converter(column.cql_type)
            else:
                pg_type = column.pg_read_as
                inline = postgres_inline(column.cql_type, pg_type)
                convert = postgres_converter(column.cql_type, pg_type)
            if inline is not None and not column.cql_type.is_collection:
                expressions.append(f"(None if {value} is None else {inline.format(v=value)})")
            elif convert is not None:
                namespace[f"c{index}"] = convert  # handles NULL itself
                expressions.append(f"c{index}({value})")
            else:
                expressions.append(value)
        names = ", ".join(f"v{i}" for i in range(len(expressions)))
        k = self.key_size
        key = "(" + "".join(f"{e}, " for e in expressions[:k]) + ")"
        values = "[" + ", ".join(expressions[k:]) + "]"
        version = MARSHAL_VERSION
        if side == "cassandra":
            source = (
                f"def record(row):\n"
                f"    token, {names}, = row\n"
                f"    return (token, _dumps({key}, {version}), _dumps({values}, {version}))\n"
            )
        else:
            source = (
                f"def record(row):\n"
                f"    {names}, = row\n"
                f"    key = {key}\n"
                f"    token = None if None in key else _token(key)\n"
                f"    return (_MIN_TOKEN if token is None else token, "
                f"_dumps(key, {version}), _dumps({values}, {version}))\n"
            )
        exec(compile(source, f"<record builder: {side}>", "exec"), namespace)  # noqa: S102
        return namespace["record"]  # type: ignore[no-any-return]

    def display_key(self, compare_forms: Sequence[Any]) -> list[Any]:
        """Key compare forms as canonical values (what lookups and key texts are made of)."""
        return [display_value(t, v) for t, v in zip(self._types, compare_forms, strict=False)]

    def key_values(self, key: bytes) -> list[Any]:
        """A record's key as canonical values."""
        return self.display_key(marshal.loads(key))

    def values(self, key: bytes, row: bytes) -> list[Any]:
        """A record's row as canonical values, in layout order."""
        compare_forms = [*marshal.loads(key), *marshal.loads(row)]
        return [display_value(t, v) for t, v in zip(self._types, compare_forms, strict=True)]

    def checksum(self, key: bytes, row: bytes) -> str:
        return row_checksum(self.names, self.values(key, row))

    def display(self, key: bytes, row: bytes) -> dict[str, Any]:
        return display_row(self.names, self.values(key, row))


def _active(converters: Iterable[Converter | None]) -> list[tuple[int, Converter]]:
    return [(i, c) for i, c in enumerate(converters) if c is not None]
