"""Rows of either store as compact, comparable records ``(order, key bytes, row bytes)``.

Cassandra records carry a fourth element: the source row's raw write-time summary as
Cassandra computed it (``cqlselect.write_time_selectors``: the latest WRITETIME of its
regular cells and their largest TTL, negative when a live cell has none), or None when the
table's write times are not read.  The hot loop only passes it along; ``source_write``
turns it into ``(write time, expiry)`` for the few rows that differ.

The key and row bytes are ``marshal`` (version 0) dumps of the values' compare forms
(``canonical.py``): version 0 writes no references and no interning flags, so equal values
always give equal bytes, and comparing two rows is one ``bytes`` comparison.

**Key equality** (the one rule of the engine): two rows are the same row when their key
bytes are equal, i.e. when every key column's compare form is equal.  The merge pairs rows
by it, lookups (``postgres.PostgresTable.lookup``) keep only the candidate rows that satisfy
it, and repair and erasure find rows through those lookups.

**Order and pairing.**  The merge needs both streams in one order in which equal keys meet.

* *Token pairing* (partition key columns of types whose compare form is exactly the value
  Cassandra hashed: text, varchar, ascii, tinyint, smallint, int, bigint, boolean,
  timestamp, date, uuid, timeuuid, blob, inet): ``order`` is the Murmur3 token.  For a
  source row it is Cassandra's own ``token(pk)``; for a target row it is computed here by
  serialising the key's compare forms exactly as Cassandra does and hashing them with the
  driver's C Murmur3.  The source then streams in Cassandra's own order, unsorted.
* *Key-hash pairing* (any partition key column of another type: decimal, whose token
  depends on its scale; varint, whose bytes need not be minimal; float and double, whose
  -0.0 and NaN payloads hash apart; time, kept at nanoseconds by Cassandra but compared at
  microseconds; frozen collections, tuples, UDTs and vectors, whose serialised element
  order and field layout the compare form does not keep): the token cannot be computed
  from the target's value, so ``order`` is the Murmur3 hash of the *key bytes* on both
  sides, and both streams are externally sorted by it (``spill.SortedRuns``).  Equal keys
  have equal key bytes, hence equal orders: they meet whatever Cassandra hashed.
"""

from __future__ import annotations

import ipaddress
import marshal
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from cassandra.cmurmur3 import murmur3

from reconciliation.engine.canonical import Converter, column_canonicalizer
from reconciliation.engine.fastpaths import (
    INLINE_NAMESPACE,
    cassandra_converter,
    cassandra_inline,
    postgres_converter,
    postgres_inline,
)
from reconciliation.engine.readable import display_row, display_value, row_checksum
from reconciliation.engine.schema import Column, Layout
from reconciliation.engine.unreadable import invalid

MIN_TOKEN = -(2**63)
MAX_TOKEN = 2**63 - 1
MARSHAL_VERSION = 0  # no references nor interning flags: the same value, the same bytes

TokenFunction = Callable[[Sequence[Any]], "int | None"]
#: A source row's write-time summary as selected: (max WRITETIME in µs, max TTL in s or a
#: negative number when a live cell has no TTL), None when no cell is live / has a TTL.
RawWrite = tuple["int | None", "int | None"]
#: A source row's write time (µs since the epoch) and when it expires (epoch seconds; None:
#: it has a cell without TTL, so it never expires as a whole).
SourceWrite = tuple[int, "float | None"]
#: How many values a Cassandra row carries after its columns when write times are read.
WRITE_COLUMNS = 2

_TINYINT = struct.Struct(">b")
_SMALLINT = struct.Struct(">h")
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


def _boolean_bytes(value: bool) -> bytes:
    if not isinstance(value, bool):
        raise TypeError("not a boolean")
    return b"\x01" if value else b"\x00"


def _blob_bytes(value: bytes) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError("not a blob")
    return value


def _inet_bytes(value: str) -> bytes:
    return ipaddress.ip_address(value).packed


def _integer_packer(packer: struct.Struct) -> Callable[[Any], bytes]:
    def pack(value: Any) -> bytes:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("not an integer")
        return packer.pack(value)

    return pack


# How Cassandra serialises a partition key column, from its compare form.
_SERIALIZERS: dict[str, Callable[[Any], bytes]] = {
    "text": _utf8,
    "varchar": _utf8,
    "ascii": _utf8,
    "tinyint": _integer_packer(_TINYINT),
    "smallint": _integer_packer(_SMALLINT),
    "int": _integer_packer(_INT),
    "bigint": _integer_packer(_BIGINT),
    "counter": _integer_packer(_BIGINT),
    "timestamp": _integer_packer(_BIGINT),
    "uuid": _uuid_bytes,
    "timeuuid": _uuid_bytes,
    "date": _date_bytes,
    "boolean": _boolean_bytes,
    "blob": _blob_bytes,
    "inet": _inet_bytes,
}
EXACT_TOKEN_TYPES = frozenset(_SERIALIZERS)


def murmur3_token(routing_key: bytes) -> int:
    """Cassandra's Murmur3Partitioner token of a serialised partition key."""
    token = int(murmur3(routing_key))
    return MAX_TOKEN if token == MIN_TOKEN else token


def fast_token_function(layout: Layout) -> TokenFunction | None:
    """Cassandra's token of a key's compare forms, when every partition key column is of a
    type whose compare form is exactly what Cassandra hashed (``EXACT_TOKEN_TYPES``); None
    otherwise (the engine then pairs by key hash).  A value that does not serialise (an
    invalid one, which equals no Cassandra key) has no token."""
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
        except (AttributeError, TypeError, ValueError, struct.error, OverflowError):
            return None

    return token


def source_write(raw: RawWrite | None, now: float) -> SourceWrite | None:
    """A source row's ``(write time µs, expiry epoch s)`` from its raw summary, read at
    ``now`` (epoch seconds); None when the row has no readable write time (no live regular
    cell, or the table's write times are not read).

    The TTL rule: a row expires when its last cell does, so its expiry is ``now`` plus the
    largest TTL, but only when every live regular cell has a TTL; one cell without a TTL
    keeps the row alive (expiry None).
    """
    if raw is None:
        return None
    write_time, ttl = raw
    if write_time is None:
        return None
    expires = None if ttl is None or ttl < 0 else now + ttl
    return (write_time, expires)


def key_order(key: bytes) -> int:
    """The merge order of a key under key-hash pairing: Murmur3 of its key bytes."""
    return int(murmur3(key))


class Codec:
    """Rows of either store to records ``(order, key bytes, row bytes)``, and back.

    ``pairs_by_token`` says which pairing the layout gets (module docstring).  A row whose
    values the fast builder cannot convert (a value of the wrong shape, out of range) is
    converted column by column, each unconvertible value becoming ``<invalid …>``: it
    differs from every readable value, so its row is reported, never the job failed.
    """

    def __init__(self, layout: Layout, *, source_writes: bool = False) -> None:
        """``source_writes``: Cassandra rows end with the ``WRITE_COLUMNS`` write-time
        values (``cassandra.CassandraTable.write_times``)."""
        self.layout = layout
        self.source_writes = source_writes
        self.names = layout.names
        self.key_size = len(layout.key)
        self.partition_size = len(layout.partition)
        self._cassandra = _active(cassandra_converter(c.cql_type) for c in layout.columns)
        self._postgres = _active(
            postgres_converter(c.cql_type, c.pg_read_as) for c in layout.columns
        )
        self._types = [c.cql_type for c in layout.columns]
        self._token = fast_token_function(layout)
        self.token_function = self._token
        self.pairs_by_token = self._token is not None
        self._safe_cassandra = [
            column_canonicalizer(c.cql_type)
            if cassandra_converter(c.cql_type) is not None
            else _identity
            for c in layout.columns
        ]
        self._safe_postgres = [
            postgres_converter(c.cql_type, c.pg_read_as) or _identity for c in layout.columns
        ]
        self.cassandra_record = self._compile("cassandra")
        self.postgres_record = self._compile("postgres")

    def _slow_record(self, side: str) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
        converters = self._safe_cassandra if side == "cassandra" else self._safe_postgres
        k = self.key_size
        width = len(converters)
        writes = self.source_writes

        def record(row: Sequence[Any]) -> tuple[Any, ...]:
            values = list(row[1 : 1 + width]) if side == "cassandra" else list(row)
            forms = []
            for convert, value in zip(converters, values, strict=True):
                try:
                    forms.append(convert(value))
                except Exception:
                    forms.append(invalid(value))
            key = marshal.dumps(tuple(forms[:k]), MARSHAL_VERSION)
            order = self.order(key, forms[:k], row[0] if side == "cassandra" else None)
            if side == "cassandra":
                raw = tuple(row[1 + width :]) if writes else None
                return (order, key, marshal.dumps(forms[k:], MARSHAL_VERSION), raw)
            return (order, key, marshal.dumps(forms[k:], MARSHAL_VERSION))

        return record

    def safe_converter(self, side: str, index: int) -> Converter:
        """Column ``index``'s converter that accepts any value (the slow path's)."""
        converters = self._safe_cassandra if side == "cassandra" else self._safe_postgres
        return converters[index]

    def order(self, key: bytes, compare_forms: Sequence[Any], cassandra_token: Any) -> int:
        """A record's merge order (token, or key hash)."""
        if self._token is None:
            return key_order(key)
        if cassandra_token is not None:
            return int(cassandra_token)
        token = None if None in compare_forms else self._token(compare_forms)
        return MIN_TOKEN if token is None else token

    def key_bytes(self, compare_forms: Sequence[Any]) -> bytes:
        """Key bytes of a key's compare forms (the engine's key equality)."""
        return marshal.dumps(tuple(compare_forms), MARSHAL_VERSION)

    def _compile(self, side: str) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
        """A record builder for this table's columns, with each column's conversion written
        inline (``canonical.*_inline``): the hot loop of a scan runs it once per row.

        Cassandra rows are ``(token, *columns[, *write-time values])`` and their records end
        with the raw write-time values as a tuple (None when not read): one tuple per row,
        summarised only for the rows that differ (``source_write``).  PostgreSQL rows are
        ``(*columns)``.  Under token pairing a target row's token is computed from the key's
        compare forms; under key-hash pairing both sides' order is the hash of the key bytes.
        """
        namespace: dict[str, Any] = {
            **INLINE_NAMESPACE,
            "_dumps": marshal.dumps,
            "_token": self._token,
            "_key_order": key_order,
            "_MIN_TOKEN": MIN_TOKEN,
        }
        expressions = [
            column_expression(side, column, f"v{index}", f"c{index}", namespace)
            for index, column in enumerate(self.layout.columns)
        ]
        names = ", ".join(f"v{i}" for i in range(len(expressions)))
        raw = "None"
        if side == "cassandra" and self.source_writes:
            written = ", ".join(f"w{i}" for i in range(WRITE_COLUMNS))
            names = f"{names}, {written}"
            raw = f"({written},)"
        k = self.key_size
        key = "(" + "".join(f"{e}, " for e in expressions[:k]) + ")"
        values = "[" + ", ".join(expressions[k:]) + "]"
        version = MARSHAL_VERSION
        if self._token is None:
            head = "token, " if side == "cassandra" else ""
            source = (
                f"def record(row):\n"
                f"    {head}{names}, = row\n"
                f"    key = _dumps({key}, {version})\n"
                f"    return (_key_order(key), key, _dumps({values}, {version})"
                + (f", {raw})\n" if side == "cassandra" else ")\n")
            )
        elif side == "cassandra":
            source = (
                f"def record(row):\n"
                f"    token, {names}, = row\n"
                f"    return (token, _dumps({key}, {version}), _dumps({values}, {version}), {raw})\n"
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
        # An unreadable value: this row only, column by column (no cost on the common path).
        namespace["_slow"] = self._slow_record(side)
        body = source.splitlines()
        source = "\n".join(
            [body[0], "    try:", *("    " + line for line in body[1:])]
            + ["    except Exception:", "        return _slow(row)", ""]
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


def column_expression(
    side: str, column: Column, value: str, converter: str, namespace: dict[str, Any]
) -> str:
    """The expression of a compiled record builder that turns ``value`` (a store's value of
    ``column``, as its scan selects it) into its compare form: the fast path written inline,
    or a call of the column's converter (put in ``namespace`` as ``converter``)."""
    if side == "cassandra":
        inline = cassandra_inline(column.cql_type)
        convert = cassandra_converter(column.cql_type)
    else:
        inline = postgres_inline(column.cql_type, column.pg_read_as)
        convert = postgres_converter(column.cql_type, column.pg_read_as)
    if inline is not None and not column.cql_type.is_collection:
        return f"(None if {value} is None else {inline.format(v=value)})"
    if convert is not None:
        namespace[converter] = convert  # handles NULL itself
        return f"{converter}({value})"
    return value


def _identity(value: Any) -> Any:
    return value


def _active(converters: Iterable[Converter | None]) -> list[tuple[int, Converter]]:
    return [(i, c) for i, c in enumerate(converters) if c is not None]
