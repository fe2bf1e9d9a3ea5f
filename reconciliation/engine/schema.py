"""Which columns a reconciliation compares, and their types on both sides.

The compared columns are the columns both tables have, minus the mapping's excluded ones
(names or shell patterns such as ``_cdc_*``), matched by name.  Key columns are always
compared.  A column on one side only is a *schema warning* on the job, not a row mismatch;
a key column missing on the target is a ``SchemaError`` that fails the job and names it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg

from reconciliation.engine.codecs import CODECS
from reconciliation.engine.codecs.byteforms import byte_form as byte_form_of
from reconciliation.engine.cqltypes import CqlType, UnsupportedType, parse_cql_type
from reconciliation.engine.identifiers import cql_name

if TYPE_CHECKING:
    from cassandra.cluster import Session


class SchemaError(ValueError):
    """The two tables cannot be reconciled as mapped; the message says why."""


@dataclass(frozen=True)
class TableSpec:
    """What the engine needs to know about a table mapping (a plain copy of TableMapping)."""

    name: str
    cassandra_keyspace: str
    cassandra_table: str
    postgres_schema: str
    postgres_table: str
    partition_key: tuple[str, ...]
    clustering: tuple[str, ...] = ()
    timestamp_column: str = "updated_at"
    excluded_columns: tuple[str, ...] = ("_cdc_*",)

    @property
    def key_columns(self) -> tuple[str, ...]:
        return (*self.partition_key, *self.clustering)

    @property
    def cassandra_label(self) -> str:
        return f"{self.cassandra_keyspace}.{self.cassandra_table}"

    @property
    def postgres_label(self) -> str:
        return f"{self.postgres_schema}.{self.postgres_table}"


@dataclass(frozen=True)
class Window:
    """Rows whose timestamp column is in [start, end)."""

    column: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Column:
    """One compared column: its CQL type (which defines equality) and its PostgreSQL type."""

    name: str
    cql_type: CqlType
    pg_type: str  # typname, e.g. int4, _text, jsonb
    pg_oid: int
    pg_format: str  # format_type(), e.g. "numeric(10,2)", usable in a cast
    pg_native: bool  # psycopg can load it (a built-in type); otherwise read as text
    # How the target's SELECT delivers it: its typname, "text", or an "@…" compare form
    # computed by PostgreSQL (see postgres.py).
    pg_read_as: str = ""
    # The SQL over "{}" that gives the target value's exact byte form (the codec's), or ""
    # when the column is decoded and compared value by value (``byte_form``).
    pg_bytes: str = ""

    @property
    def hashed(self) -> bool:
        """Compared by its byte form: both stores can give the same exact bytes for it."""
        return bool(self.pg_bytes)


@dataclass(frozen=True)
class Layout:
    """The compared columns: the key (partition then clustering) first, then the others by
    name."""

    spec: TableSpec
    key: tuple[Column, ...]
    values: tuple[Column, ...]
    warnings: tuple[str, ...]
    cassandra_types: dict[str, CqlType]
    postgres_types: dict[str, str]

    @property
    def columns(self) -> tuple[Column, ...]:
        return (*self.key, *self.values)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def hashed_values(self) -> tuple[Column, ...]:
        """The value columns a scan compares by their byte form (``Column.hashed``)."""
        return tuple(c for c in self.values if c.hashed)

    @property
    def decoded_values(self) -> tuple[Column, ...]:
        """The value columns a scan decodes and compares value by value."""
        return tuple(c for c in self.values if not c.hashed)

    @property
    def partition(self) -> tuple[Column, ...]:
        return self.key[: len(self.spec.partition_key)]


def is_excluded(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def cassandra_columns(session: Session, spec: TableSpec) -> dict[str, dict[str, Any]]:
    """column name -> {type, kind, position} from system_schema (SchemaError if no table)."""
    cql_name(spec.cassandra_keyspace), cql_name(spec.cassandra_table)
    rows = session.execute(
        "SELECT column_name, type, kind, position FROM system_schema.columns "
        "WHERE keyspace_name = %s AND table_name = %s",
        (spec.cassandra_keyspace, spec.cassandra_table),
    )
    columns = {_field(r, "column_name"): _as_dict(r) for r in rows}
    if not columns:
        raise SchemaError(f"Cassandra table {spec.cassandra_label} does not exist.")
    return columns


def _as_dict(row: Any) -> dict[str, Any]:
    if isinstance(row, dict):
        return row
    return dict(row._asdict())


def _field(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, dict) else getattr(row, name)


def cassandra_udts(session: Session, keyspace: str) -> dict[str, tuple[list[str], list[str]]]:
    rows = session.execute(
        "SELECT type_name, field_names, field_types FROM system_schema.types "
        "WHERE keyspace_name = %s",
        (keyspace,),
    )
    return {
        _field(r, "type_name"): (list(_field(r, "field_names")), list(_field(r, "field_types")))
        for r in rows
    }


def postgres_columns(conn: psycopg.Connection, spec: TableSpec) -> dict[str, dict[str, Any]]:
    """column name -> {typname, oid, format, native} from pg_catalog (SchemaError if none)."""
    rows = conn.execute(
        "SELECT a.attname, t.typname, a.atttypid, format_type(a.atttypid, a.atttypmod), "
        "       t.oid < 16384 "
        "FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped "
        "AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
        "ORDER BY a.attnum",
        (spec.postgres_schema, spec.postgres_table),
    ).fetchall()
    if not rows:
        raise SchemaError(f"PostgreSQL table {spec.postgres_label} does not exist.")
    return {
        name: {"typname": typname, "oid": oid, "format": fmt, "native": bool(native)}
        for name, typname, oid, fmt, native in rows
    }


def read_as(cql_type: CqlType, pg_type: str, native: bool, server_version: int) -> str:
    """How the target's SELECT reads a column: as a compare form PostgreSQL computes
    (cheaper to send and to parse than the value), as its own type, or as text."""
    if not native:
        return "text"
    codec = CODECS.get(cql_type.name)
    form = codec.postgres_forms.get(pg_type) if codec is not None else None
    if form is not None and server_version >= form[1]:
        return form[0]
    return pg_type


def byte_form(cql_type: CqlType, pg_type: str, native: bool, server_version: int) -> str:
    """The SQL over "{}" of a target column's exact byte form (its codec's), or "" when the
    column has none here: the values are then decoded and compared one by one."""
    found = byte_form_of(cql_type) if native else None
    form = found[1].get(pg_type) if found is not None else None
    return form[0] if form is not None and server_version >= form[1] else ""


def discover_layout(session: Session, conn: psycopg.Connection, spec: TableSpec) -> Layout:
    """The compared columns of ``spec``, or SchemaError when the tables cannot be compared."""
    source = cassandra_columns(session, spec)
    target = postgres_columns(conn, spec)
    actual_partition = tuple(
        name
        for name, _ in sorted(
            ((n, c["position"]) for n, c in source.items() if c["kind"] == "partition_key"),
            key=lambda item: item[1],
        )
    )
    if actual_partition != tuple(spec.partition_key):
        raise SchemaError(
            f"The mapping's partition key ({', '.join(spec.partition_key) or 'none'}) is not "
            f"the partition key of {spec.cassandra_label} ({', '.join(actual_partition)})."
        )
    for name in spec.key_columns:
        if name not in source:
            raise SchemaError(f"Key column {name!r} does not exist in {spec.cassandra_label}.")
        if name not in target:
            raise SchemaError(
                f"Key column {name!r} of {spec.cassandra_label} is missing on the target "
                f"table {spec.postgres_label}."
            )
    udts = cassandra_udts(session, spec.cassandra_keyspace)
    try:
        types = {name: parse_cql_type(col["type"], udts) for name, col in source.items()}
    except UnsupportedType as exc:
        raise SchemaError(f"{spec.cassandra_label}: {exc}") from exc

    version = conn.info.server_version

    def column(name: str) -> Column:
        pg = target[name]
        return Column(
            name,
            types[name],
            pg["typname"],
            pg["oid"],
            pg["format"],
            pg["native"],
            read_as(types[name], pg["typname"], pg["native"], version),
            byte_form(types[name], pg["typname"], pg["native"], version),
        )

    keys = set(spec.key_columns)
    excluded = spec.excluded_columns
    shared = sorted(
        n for n in source if n in target and n not in keys and not is_excluded(n, excluded)
    )
    warnings = [
        f"Column {n!r} is only in Cassandra ({spec.cassandra_label}); it is not compared."
        for n in sorted(source)
        if n not in target and n not in keys and not is_excluded(n, excluded)
    ] + [
        f"Column {n!r} is only in PostgreSQL ({spec.postgres_label}); it is not compared."
        for n in sorted(target)
        if n not in source and not is_excluded(n, excluded)
    ]
    return Layout(
        spec=spec,
        key=tuple(column(n) for n in spec.key_columns),
        values=tuple(column(n) for n in shared),
        warnings=tuple(warnings),
        cassandra_types=types,
        postgres_types={n: c["typname"] for n, c in target.items()},
    )
