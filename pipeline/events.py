"""Debezium Cassandra change events, decoded into what the sink writes.

The Cassandra connector does not send rows. Each Kafka record (JSON, no embedded schema) is
one mutation: ``op`` (``i`` insert, ``u`` update, ``d`` delete), ``source.ts_us`` (the
mutation's write time, microseconds, as Cassandra's ``WRITETIME``) and ``after``, where every
column the mutation touched is a cell ``{"value", "deletion_ts", "set"}`` and every column it
did not touch is ``null``. So an update names only its changed columns, a cell with a null
value and a ``deletion_ts`` is a deleted cell, and a live cell with a ``deletion_ts`` carries a
TTL (the ``deletion_ts`` is when it expires). That shape is why the sink is our own and not
Debezium's JDBC sink: it would need every column flattened and the per-cell TTL and partial
updates understood, which no standard transform does.

The values are the connector's JSON: text, numbers, booleans; decimals and varints as
strings (``decimal.handling.mode=string``); timestamps as epoch milliseconds, dates as days
since the epoch, times as nanoseconds of the day, durations as nanoseconds (months counted
as 30 days), blobs as base64, inets as Java's ``/address``, sets and lists as arrays, maps
with text keys as objects and other maps as ``[key, value]`` pairs, tuples as
``{"field1": …}`` and UDTs as objects. ``pipeline.sink`` turns them into PostgreSQL values by
the target column's type (``to_postgres``).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_TUPLE_FIELD = re.compile(r"field(\d+)")
# Columns the connector adds to every event that are not table columns.
_META_COLUMNS = frozenset({"_range_start", "_range_end"})


class UndecodableEvent(ValueError):
    """A Kafka record that is not a Debezium Cassandra change event."""


@dataclass(frozen=True)
class Cell:
    """One column as a mutation left it: a live value, a deleted cell, or a TTL'd value."""

    value: Any
    deletion_ts: int | None

    @property
    def deleted(self) -> bool:
        return self.value is None and self.deletion_ts is not None

    @property
    def expires_at_us(self) -> int | None:
        """When a live cell with a TTL expires (microseconds), else None."""
        return self.deletion_ts if self.value is not None else None


@dataclass(frozen=True)
class ChangeEvent:
    """One Cassandra mutation of one row (or, for a delete without clustering key, a partition)."""

    keyspace: str
    table: str
    op: str
    write_time_us: int
    key: dict[str, Any]
    cells: dict[str, Cell] = field(default_factory=dict)
    range_delete: bool = False

    @property
    def is_row_delete(self) -> bool:
        """A delete of the whole row: every regular column it names is a deleted cell.

        A ``DELETE col FROM …`` names only that column and is an update to NULL instead."""
        regular = {name: c for name, c in self.cells.items() if name not in self.key}
        return self.op == "d" and all(c.deleted for c in regular.values())

    @property
    def expires_at_us(self) -> int | None:
        """When the row expires in Cassandra by TTL, if every regular cell written has one."""
        regular = [c for name, c in self.cells.items() if name not in self.key and not c.deleted]
        if not regular or any(c.expires_at_us is None for c in regular):
            return None
        return max(c.expires_at_us for c in regular if c.expires_at_us is not None)


def decode(raw: bytes | None) -> ChangeEvent | None:
    """The change event in a Kafka record's value; None for a tombstone (null value)."""
    if raw is None:
        return None
    try:
        body = json.loads(raw)
        source = body["source"]
        after: Mapping[str, Any] = body["after"]
        op = str(body["op"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UndecodableEvent(f"not a Debezium Cassandra change event: {exc!r}") from exc
    cells: dict[str, Cell] = {}
    key: dict[str, Any] = {}
    for name, cell in after.items():
        if name in _META_COLUMNS or cell is None:
            continue
        if not isinstance(cell, Mapping):
            raise UndecodableEvent(f"column {name!r} is not a cell: {cell!r}")
        cells[name] = Cell(cell.get("value"), cell.get("deletion_ts"))
    return ChangeEvent(
        keyspace=str(source["keyspace"]),
        table=str(source["table"]),
        op=op,
        write_time_us=int(source["ts_us"]),
        key=key,
        cells=cells,
        range_delete=after.get("_range_start") is not None,
    )


def with_key(event: ChangeEvent, raw_key: bytes | None) -> ChangeEvent:
    """The event with its primary key from the Kafka record's key (``{"col": value, …}``)."""
    if raw_key is None:
        raise UndecodableEvent("a change event without a key")
    try:
        key = json.loads(raw_key)
    except ValueError as exc:
        raise UndecodableEvent(f"undecodable key {raw_key!r}") from exc
    if not isinstance(key, dict):
        raise UndecodableEvent(f"the key is not an object: {key!r}")
    return ChangeEvent(
        event.keyspace,
        event.table,
        event.op,
        event.write_time_us,
        key,
        event.cells,
        event.range_delete,
    )


# --- values -----------------------------------------------------------------------------


def _json_ready(value: Any) -> Any:
    """A connector value made fit for jsonb: non-text-keyed maps (pairs) become objects with
    text keys, tuples (``field1``…) become arrays, as cdcrecon compares maps and tuples."""
    if isinstance(value, dict):
        fields = [_TUPLE_FIELD.fullmatch(k) for k in value]
        if value and all(fields):
            ordered = sorted(value.items(), key=lambda kv: int(kv[0][5:]))
            return [_json_ready(v) for _, v in ordered]
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        if value and all(isinstance(v, list) and len(v) == 2 for v in value):
            # [key, value] pairs: a map whose keys are not text.
            return {str(k): _json_ready(v) for k, v in value}
        return [_json_ready(v) for v in value]
    return value


def _float(value: Any) -> float:
    return float(value)  # "NaN", "Infinity" and "-Infinity" come as strings


_SCALAR_CONVERTERS: dict[str, Any] = {
    "text": str,
    "character varying": str,
    "character": str,
    "smallint": int,
    "integer": int,
    "bigint": int,
    "numeric": lambda v: decimal.Decimal(str(v)),
    "real": _float,
    "double precision": _float,
    "boolean": bool,
    "uuid": lambda v: uuid.UUID(str(v)),
    "timestamp with time zone": lambda v: EPOCH + dt.timedelta(milliseconds=int(v)),
    "timestamp without time zone": lambda v: (EPOCH + dt.timedelta(milliseconds=int(v))).replace(
        tzinfo=None
    ),
    "date": lambda v: dt.date(1970, 1, 1) + dt.timedelta(days=int(v)),
    "time without time zone": lambda v: (
        dt.datetime.min + dt.timedelta(microseconds=int(v) // 1000)
    ).time(),
    "bytea": lambda v: base64.b64decode(v),
    "inet": lambda v: str(v).rsplit("/", 1)[-1],
    "interval": lambda v: dt.timedelta(microseconds=int(v) // 1000),
}


def to_postgres(value: Any, pg_type: str, element_type: str | None = None) -> Any:
    """A connector value as the Python value psycopg writes into a column of ``pg_type``
    (``information_schema.columns.data_type``; ``element_type`` for an ARRAY).

    Returns a ``("json", value)`` marker for json/jsonb columns, which the sink wraps."""
    if value is None:
        return None
    if pg_type in ("jsonb", "json"):
        return ("json", _json_ready(value))
    if pg_type == "ARRAY":
        items = value if isinstance(value, list) else [value]
        return [to_postgres(v, element_type or "text") for v in items] or None
    convert = _SCALAR_CONVERTERS.get(pg_type)
    if convert is None:
        return str(value) if not isinstance(value, (dict, list)) else json.dumps(value)
    return convert(value)
