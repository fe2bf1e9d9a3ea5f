"""The target table as a repair reads and writes it, one row by primary key.

Its columns and their types (``information_schema.columns``), the columns a repair writes
(the key columns, then those both stores have minus the mapping's excluded ones), and the
SQL on one row: lock it (``SELECT … FOR UPDATE``), upsert it
(``INSERT … ON CONFLICT (key) DO UPDATE``), delete it.  Every schema, table and column name
goes through ``psycopg.sql.Identifier``; rows come back as JSON (``target_values.to_json``)
for the audit entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from reconciliation.engine.schema import is_excluded
from reconciliation.models import TableMapping
from reconciliation.repair.source_changes import SchemaProblem
from reconciliation.repair.target_values import TargetColumn, to_json

Row = dict[str, Any]


def target_column_types(conn: psycopg.Connection, mapping: TableMapping) -> dict[str, TargetColumn]:
    rows = conn.execute(
        "SELECT column_name, data_type, udt_name FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (mapping.postgres_schema, mapping.postgres_table),
    ).fetchall()
    if not rows:
        raise SchemaProblem(
            f"PostgreSQL table {mapping.postgres_schema}.{mapping.postgres_table} does not exist."
        )
    return {name: TargetColumn(name, data_type, udt) for name, data_type, udt in rows}


def compared_columns(
    mapping: TableMapping, cql_types: Mapping[str, str], target_columns: Mapping[str, TargetColumn]
) -> list[str]:
    """The columns a repair writes: key columns first, then the shared, non-excluded ones."""
    missing_keys = [c for c in mapping.key_columns if c not in target_columns]
    if missing_keys:
        raise SchemaProblem(
            f"Key column(s) {', '.join(missing_keys)} missing in PostgreSQL table "
            f"{mapping.postgres_schema}.{mapping.postgres_table}."
        )
    excluded = list(mapping.excluded_columns or [])
    others = sorted(
        c
        for c in cql_types
        if c in target_columns and c not in mapping.key_columns and not is_excluded(c, excluded)
    )
    return [*mapping.key_columns, *others]


def _table(mapping: TableMapping) -> sql.Composable:
    return sql.Identifier(mapping.postgres_schema, mapping.postgres_table)


def _key_condition(mapping: TableMapping) -> sql.Composable:
    return sql.SQL(" AND ").join(
        sql.SQL("{} = %s").format(sql.Identifier(c)) for c in mapping.key_columns
    )


def lock_target_row(conn: psycopg.Connection, mapping: TableMapping, key: list[Any]) -> Row | None:
    """The target row with primary key ``key``, locked until ``conn``'s transaction ends
    (None: there is none)."""
    query = sql.SQL("SELECT * FROM {} WHERE {} FOR UPDATE").format(
        _table(mapping), _key_condition(mapping)
    )
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(query, key).fetchone()
    return to_json(row) if row is not None else None


def upsert_target_row(
    conn: psycopg.Connection, mapping: TableMapping, values: dict[str, Any]
) -> Row:
    """Insert ``values`` as a row, or update the row with their key; the row as written."""
    columns = list(values)
    non_key = [c for c in columns if c not in mapping.key_columns] or mapping.key_columns
    query = sql.SQL(
        "INSERT INTO {table} ({columns}) VALUES ({values}) "
        "ON CONFLICT ({keys}) DO UPDATE SET {updates} RETURNING *"
    ).format(
        table=_table(mapping),
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        values=sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        keys=sql.SQL(", ").join(map(sql.Identifier, mapping.key_columns)),
        updates=sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in non_key
        ),
    )
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(query, list(values.values())).fetchone()
    assert row is not None  # RETURNING of an upsert always yields the row
    return to_json(row)


def delete_target_row(conn: psycopg.Connection, mapping: TableMapping, key: list[Any]) -> bool:
    """Delete the row with primary key ``key``; whether there was one."""
    query = sql.SQL("DELETE FROM {} WHERE {}").format(_table(mapping), _key_condition(mapping))
    return conn.execute(query, key).rowcount > 0
