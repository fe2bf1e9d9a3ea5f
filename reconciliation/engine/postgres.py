"""Reading the target table: one consistent snapshot, streamed, plus key lookups.

A full read is ``COPY (SELECT …) TO STDOUT (FORMAT BINARY)`` inside a REPEATABLE READ, READ
ONLY transaction: one snapshot, rows parsed by psycopg's C loaders as they arrive, nothing
held but the current row.  The session runs in UTC (so ``timestamptz`` comes back in UTC)
and jsonb numbers are read as ``Decimal`` (so ``1.10`` in a jsonb stays exact).  Columns of
types psycopg has no loader for (enums, domains, extensions) are read as text.
"""

from __future__ import annotations

import decimal
import functools
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import set_json_loads

from reconciliation.engine.canonical import key_text
from reconciliation.engine.schema import Column, Layout, Window

Connect = Callable[[], psycopg.Connection]

_json_loads = functools.partial(json.loads, parse_float=decimal.Decimal)


def prepare_connection(conn: psycopg.Connection) -> psycopg.Connection:
    """UTC session time zone, exact jsonb numbers, read-only."""
    set_json_loads(_json_loads, conn)
    conn.read_only = True
    conn.autocommit = True
    conn.execute("SET TIME ZONE 'UTC'")
    conn.autocommit = False
    return conn


class PostgresTable:
    """The target side of one reconciliation: snapshot scans, counts, lookups and samples."""

    def __init__(self, connect: Connect, layout: Layout) -> None:
        self.connect = connect
        self.layout = layout
        spec = layout.spec
        self.table = sql.Identifier(spec.postgres_schema, spec.postgres_table)
        self.selected = sql.SQL(", ").join(_select(c) for c in layout.columns)
        self.types = [_COPY_TYPES.get(c.pg_read_as, c.pg_oid) for c in layout.columns]

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        conn = prepare_connection(self.connect())
        try:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            yield conn
        finally:
            conn.rollback()
            conn.close()

    def _where(self, window: Window | None) -> sql.Composable:
        """The window's filter, with its bounds as literals (COPY takes no parameters)."""
        if window is None:
            return sql.SQL("")
        return sql.SQL(" WHERE {c} >= {start} AND {c} < {end}").format(
            c=sql.Identifier(window.column),
            start=sql.Literal(window.start),
            end=sql.Literal(window.end),
        )

    @contextmanager
    def snapshot(self, window: Window | None = None) -> Iterator[Iterator[tuple[Any, ...]]]:
        """The rows (compared columns, layout order) of one REPEATABLE READ snapshot."""
        statement = sql.SQL(
            "COPY (SELECT {cols} FROM {table}{where}) TO STDOUT (FORMAT BINARY)"
        ).format(cols=self.selected, table=self.table, where=self._where(window))
        with self._connection() as conn, conn.cursor() as cur:
            with cur.copy(statement) as copy:
                copy.set_types(self.types)
                yield iter(copy.rows())

    def count(self, window: Window | None = None) -> int:
        with self._connection() as conn:
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {table}{where}").format(
                    table=self.table, where=self._where(window)
                )
            ).fetchone()
        return int(row[0]) if row else 0

    def estimated_rows(self) -> int:
        spec = self.layout.spec
        with self._connection() as conn:
            row = conn.execute(
                "SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = %s",
                (spec.postgres_schema, spec.postgres_table),
            ).fetchone()
        return max(0, int(row[0])) if row else 0

    def lookup(self, canonical_keys: Sequence[Sequence[Any]]) -> list[list[tuple[Any, ...]]]:
        """The current rows for each key (a list: a target without a primary key may hold
        duplicates), in one query per call."""
        if not canonical_keys:
            return []
        key = self.layout.key
        arrays = [[key_text(k[i]) for k in canonical_keys] for i in range(len(key))]
        names = [sql.Identifier(f"_k{i}") for i in range(len(key))]
        join = sql.SQL(" AND ").join(_key_equals(c, names[i]) for i, c in enumerate(key))
        query = sql.SQL(
            "SELECT _k._n, {cols} FROM {table} AS t "
            "JOIN unnest({arrays}) WITH ORDINALITY AS _k({names}, _n) ON {join}"
        ).format(
            cols=sql.SQL(", ").join(_select(c, "t") for c in self.layout.columns),
            table=self.table,
            arrays=sql.SQL(", ").join(sql.SQL("%s::text[]") for _ in key),
            names=sql.SQL(", ").join(names),
            join=join,
        )
        found: list[list[tuple[Any, ...]]] = [[] for _ in canonical_keys]
        with self._connection() as conn:
            for row in conn.execute(query, arrays, binary=True):
                found[int(row[0]) - 1].append(tuple(row[1:]))
        return found

    def sample_keys(self, count: int, estimate: int) -> list[tuple[Any, ...]]:
        """About ``count`` random keys (TABLESAMPLE, then random order)."""
        columns = sql.SQL(", ").join(_select(c) for c in self.layout.key)
        percent = min(100.0, 100.0 * 3 * count / max(estimate, 1))
        with self._connection() as conn:
            rows = conn.execute(
                sql.SQL(
                    "SELECT {cols} FROM {table} TABLESAMPLE BERNOULLI (%s) "
                    "ORDER BY random() LIMIT %s"
                ).format(cols=columns, table=self.table),
                [percent, count],
            ).fetchall()
            if len(rows) < count and percent < 100:
                rows = conn.execute(
                    sql.SQL("SELECT {cols} FROM {table} ORDER BY random() LIMIT %s").format(
                        cols=columns, table=self.table
                    ),
                    [count],
                ).fetchall()
        return [tuple(r) for r in rows]


# Compare forms computed by PostgreSQL (the same as canonical.py computes in Python):
_COMPARE_FORMS = {
    "@bytes": "uuid_send({})",  # a uuid's 16 bytes
    "@ms": "floor(extract(epoch FROM {}) * 1000)::int8",  # epoch milliseconds, cut
    "@decimal": "trim_scale({})::text",  # no trailing zeros, no exponent
    "@f32": "{}::float8",  # a real's exact value
    "text": "{}::text",
}
_COPY_TYPES: dict[str, int | str] = {
    "@bytes": "bytea",
    "@ms": "int8",
    "@decimal": "text",
    "@f32": "float8",
    "text": "text",
}


def _select(column: Column, alias: str | None = None) -> sql.Composable:
    name = sql.Identifier(alias, column.name) if alias else sql.Identifier(column.name)
    template = _COMPARE_FORMS.get(column.pg_read_as)
    return name if template is None else sql.SQL(template).format(name)


def _key_equals(column: Column, value: sql.Identifier) -> sql.Composable:
    """``t.column = <the key's canonical text as the column's type>`` (index-friendly)."""
    name = sql.Identifier(column.name)
    if column.pg_type == "bytea":
        return sql.SQL("t.{} = decode(_k.{}, 'hex')").format(name, value)
    if not column.pg_native:
        return sql.SQL("t.{}::text = _k.{}").format(name, value)
    # pg_format comes from format_type() in the catalog, not from a user.
    return sql.SQL("t.{} = _k.{}::{}").format(name, value, sql.SQL(column.pg_format))
