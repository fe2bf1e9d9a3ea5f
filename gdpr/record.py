"""The record an erasure request names, checked before anything is written (step 1 of
``gdpr.erasure``): its table must be registered for reconciliation (``find_mapping``,
else ``UnknownRecordTable``) and its key must fit the table's key columns, each part a valid
value of its column's CQL type (``resolve_key``, else ``BadKey``).  The key columns' types
come from Cassandra's schema, or from the target's when Cassandra cannot answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg

from cdcrecon.conf import TABLE_NAME_PATTERN
from reconciliation.connections import (
    StoreUnavailable,
    healthy_cassandra_session,
    target_connection,
)
from reconciliation.engine.codecs import POSTGRES_TO_CQL_TYPES
from reconciliation.engine.keys import BadKey, format_key, split_key
from reconciliation.keyparse import parse_key_for_columns
from reconciliation.models import TableMapping
from reconciliation.registry import (
    TableNotFound,
    UnknownTable,
    cassandra_column_types,
    ensure_key_columns,
    get_mapping_for_cassandra_table,
)

_NAME = re.compile(TABLE_NAME_PATTERN)


class UnknownRecordTable(LookupError):
    """The keyspace and table of an erasure request belong to no registered mapping."""

    def __init__(self, keyspace: str, table: str) -> None:
        super().__init__(
            f"{keyspace!r}.{table!r} is not a registered table: erasure only reaches tables "
            "registered for reconciliation."
        )


@dataclass(frozen=True)
class RecordKey:
    """A validated primary key: its columns, their CQL types and the values to bind."""

    columns: tuple[str, ...]
    cql_types: tuple[str, ...]
    values: tuple[Any, ...]

    @property
    def text(self) -> str:
        """The canonical key text, as ``Mismatch.primary_key_value`` stores it."""
        return format_key(self.values)

    @property
    def part_texts(self) -> tuple[str, ...]:
        return tuple(format_key([value]) for value in self.values)


def find_mapping(keyspace: str, table: str) -> TableMapping:
    """The registered mapping of Cassandra table ``keyspace.table``; ``UnknownRecordTable``
    otherwise.  Names that could not be Cassandra names are refused without a query."""
    if not (_NAME.fullmatch(keyspace) and _NAME.fullmatch(table)):
        raise UnknownRecordTable(keyspace, table)
    try:
        return get_mapping_for_cassandra_table(keyspace, table)
    except UnknownTable:
        raise UnknownRecordTable(keyspace, table) from None


def describe_error(exc: BaseException) -> str:
    """An error as the audit entry records it: its class and text, at most 2,000 characters."""
    text = str(exc).strip() or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {text}"[:2000]


def _cassandra_key_types(mapping: TableMapping) -> dict[str, str]:
    session = healthy_cassandra_session()
    if not mapping.key_columns:
        try:
            ensure_key_columns(mapping, session)
        except TableNotFound as exc:  # Cassandra answered: there is no such table
            raise UnknownRecordTable(mapping.cassandra_keyspace, mapping.cassandra_table) from exc
    try:
        return cassandra_column_types(session, mapping.cassandra_keyspace, mapping.cassandra_table)
    except TableNotFound as exc:
        raise UnknownRecordTable(mapping.cassandra_keyspace, mapping.cassandra_table) from exc


def postgres_column_types(conn: psycopg.Connection, mapping: TableMapping) -> dict[str, str]:
    """The target table's columns and their ``information_schema`` data types (none: the
    table does not exist)."""
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s",
        (mapping.postgres_schema, mapping.postgres_table),
    ).fetchall()
    return {str(name): str(kind) for name, kind in rows}


def _postgres_key_types(mapping: TableMapping) -> dict[str, str]:
    with target_connection() as conn:
        types = postgres_column_types(conn, mapping)
    return {name: POSTGRES_TO_CQL_TYPES.get(kind, kind) for name, kind in types.items()}


def _key_column_types(mapping: TableMapping) -> list[str]:
    """The CQL type of each key column, from system_schema (or the target when Cassandra is down).

    Raises ``StoreUnavailable`` when neither store can tell.
    """
    errors: list[str] = []
    try:
        types = _cassandra_key_types(mapping)
        if mapping.key_columns and all(column in types for column in mapping.key_columns):
            return [types[column] for column in mapping.key_columns]
        errors.append(
            f"Cassandra table {mapping.cassandra_keyspace}.{mapping.cassandra_table} lacks "
            "its key columns (dropped or altered?)."
        )
    except UnknownRecordTable:
        raise
    except Exception as exc:  # any failure to read the schema: fall back to the target
        errors.append(f"Cassandra: {describe_error(exc)}")
    if mapping.key_columns:
        try:
            types = _postgres_key_types(mapping)
            if all(column in types for column in mapping.key_columns):
                return [types[column] for column in mapping.key_columns]
            errors.append("PostgreSQL: the target table lacks the key columns.")
        except Exception as exc:
            errors.append(f"PostgreSQL: {describe_error(exc)}")
    raise StoreUnavailable(
        "The key column types could not be read from either store. " + " ".join(errors)
    )


def resolve_key(mapping: TableMapping, key_text: str) -> RecordKey:
    """Check ``key_text`` against the table's key columns and types.

    ``UnknownRecordTable`` when the mapped Cassandra table does not exist; ``BadKey`` when
    the text is malformed or has the wrong number of parts, ``InvalidKey`` (a ``BadKey``
    naming the column) when a part is not a valid value of its column's type and range; ``StoreUnavailable`` when the types cannot be read from either store.
    """
    if "\x00" in key_text:
        raise BadKey("The primary key must not contain NUL characters.")
    if mapping.key_columns:  # arity first: no store needed to refuse a malformed key
        split_key(key_text, len(mapping.key_columns))
    cql_types = _key_column_types(mapping)
    # Every value checked against its column's type and range (InvalidKey names the column)
    # before the audit entry is written or any store is touched.
    columns = list(zip(mapping.key_columns, cql_types, strict=True))
    values = tuple(parse_key_for_columns(key_text, columns))
    return RecordKey(tuple(mapping.key_columns), tuple(cql_types), values)
