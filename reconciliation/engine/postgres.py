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
import marshal
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import set_json_loads

from reconciliation.engine.codecs import CODECS
from reconciliation.engine.codecs.lookup import IMPOSSIBLE, KeyFilter
from reconciliation.engine.records import MARSHAL_VERSION
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
        self.hashed_selected: sql.Composable | None = None  # set by the engine (rowhash.py)
        self.hashed_types: list[int | str] = []
        self.hashed_from: sql.Composable | None = None  # the cells a row hash computes once

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        conn = prepare_connection(self.connect())
        try:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            yield conn
        finally:
            conn.rollback()
            conn.close()

    def _where(
        self, window: Window | None, blocks: tuple[int, int | None] | None = None
    ) -> sql.Composable:
        """The window's filter and the block range's, as literals (COPY takes no
        parameters)."""
        conditions: list[sql.Composable] = []
        if window is not None:
            conditions.append(
                sql.SQL("{c} >= {start} AND {c} < {end}").format(
                    c=sql.Identifier(window.column),
                    start=sql.Literal(window.start),
                    end=sql.Literal(window.end),
                )
            )
        if blocks is not None:  # a TID range scan: only these blocks are read
            first, end = int(blocks[0]), blocks[1]
            conditions.append(sql.SQL("ctid >= {}::tid").format(sql.Literal(f"({first},0)")))
            if end is not None:
                conditions.append(sql.SQL("ctid < {}::tid").format(sql.Literal(f"({int(end)},0)")))
        if not conditions:
            return sql.SQL("")
        return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions)

    @contextmanager
    def snapshot(
        self,
        window: Window | None = None,
        blocks: tuple[int, int | None] | None = None,
        *,
        hashed: bool = False,
    ) -> Iterator[Iterator[tuple[Any, ...]]]:
        """The rows (compared columns, layout order) of one REPEATABLE READ snapshot: the
        whole table, or the rows stored in ``blocks`` ``[first, end)`` (no end: to the
        table's end).  ``hashed``: the key, the row's byte-form digest and the decoded
        columns (``hashed_selected``, ``rowhash.py``)."""
        selected = self.hashed_selected if hashed else self.selected
        assert selected is not None
        lateral = (self.hashed_from if hashed else None) or sql.SQL("")
        statement = sql.SQL(
            "COPY (SELECT {cols} FROM {table}{lateral}{where}) TO STDOUT (FORMAT BINARY)"
        ).format(
            cols=selected, table=self.table, lateral=lateral, where=self._where(window, blocks)
        )
        with self._connection() as conn, conn.cursor() as cur:
            with cur.copy(statement) as copy:
                copy.set_types(self.hashed_types if hashed else self.types)
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

    def block_count(self) -> int:
        """How many blocks the table's heap has now (what ``snapshot(blocks=…)`` splits)."""
        spec = self.layout.spec
        with self._connection() as conn:
            row = conn.execute(
                "SELECT pg_relation_size(c.oid) / current_setting('block_size')::bigint "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = %s",
                (spec.postgres_schema, spec.postgres_table),
            ).fetchone()
        return int(row[0]) if row else 0

    def lookup(
        self,
        keys: Sequence[Sequence[Any]],
        key_of: Callable[[tuple[Any, ...]], bytes],
        *,
        raw_key: bool = False,
        columns: Sequence[sql.Composable] | None = None,
    ) -> list[list[tuple[Any, ...]]]:
        """The current rows for each key, given as compare forms (a list: a target without a
        primary key may hold duplicates), in one query per call.

        The query fetches *candidates*: for each key column a predicate that every
        representation the engine calls equal satisfies (``key_filter``), index-friendly
        where the column's type allows it; the rows kept are those whose ``key_of(row)`` is
        the key's bytes (the engine's one key equality, ``records.py``).  When no key column
        has such a predicate (keys kept as jsonb, say) the table is scanned.  With
        ``raw_key`` each row ends with its key columns as stored (for repair and erasure).
        ``columns``: select these (over the table as ``t``) instead of the compared columns.
        """
        if not keys:
            return []
        wanted: dict[bytes, list[int]] = {}
        for index, key in enumerate(keys):
            wanted.setdefault(marshal.dumps(tuple(key), MARSHAL_VERSION), []).append(index)
        found: list[list[tuple[Any, ...]]] = [[] for _ in keys]
        filters: list[tuple[int, KeyFilter]] = []
        for i, c in enumerate(self.layout.key):
            found_filter = key_filter(c)
            if found_filter is not None:
                filters.append((i, found_filter))
        selected = list(columns or [_select(c, "t") for c in self.layout.columns])
        width = len(selected)
        if raw_key:
            selected += [sql.Identifier("t", c.name) for c in self.layout.key]
        cols = sql.SQL(", ").join(selected)
        with self._connection() as conn:
            if not filters:
                rows: Iterable[tuple[Any, ...]] = conn.cursor(name="cdcrecon_lookup").stream(
                    sql.SQL("SELECT {cols} FROM {table} AS t").format(cols=cols, table=self.table)
                )
                for row in rows:
                    for index in wanted.get(key_of(tuple(row[:width])), ()):
                        found[index].append(tuple(row))
                return found
            # A key with a NULL part (a target without a primary key may hold one) is read
            # on its own, with IS NULL for that part: "= NULL" would never find it.
            for index, key in enumerate(keys):
                if any(value is None for value in key):
                    query = sql.SQL("SELECT {cols} FROM {table} AS t WHERE {where}").format(
                        cols=cols, table=self.table, where=self._where_key(key, filters)
                    )
                    for row in conn.execute(query, binary=True):
                        if key_of(tuple(row[:width])) == marshal.dumps(tuple(key), MARSHAL_VERSION):
                            found[index].append(tuple(row))
            arrays: list[list[str | None]] = [[] for _ in filters]
            for key in keys:
                params = [f.param(key[i]) for i, f in filters]
                if any(p is IMPOSSIBLE for p in params) or None in key:
                    params = [None] * len(filters)  # cannot be on the target
                for array, param in zip(arrays, params, strict=True):
                    array.append(None if param is IMPOSSIBLE else param)  # type: ignore[arg-type]
            names = [sql.Identifier(f"_k{n}") for n in range(len(filters))]
            join = sql.SQL(" AND ").join(
                f.predicate(
                    sql.Identifier("t", self.layout.key[i].name), sql.SQL("_k.{}").format(n)
                )
                for (i, f), n in zip(filters, names, strict=True)
            )
            query = sql.SQL(
                "SELECT _k._n, {cols} FROM unnest({arrays}) WITH ORDINALITY AS _k({names}, _n) "
                "JOIN {table} AS t ON {join}"
            ).format(
                cols=cols,
                table=self.table,
                arrays=sql.SQL(", ").join(sql.SQL("%s::text[]") for _ in filters),
                names=sql.SQL(", ").join(names),
                join=join,
            )
            key_bytes = [marshal.dumps(tuple(k), MARSHAL_VERSION) for k in keys]
            for line in conn.execute(query, arrays, binary=True):
                index, row = int(line[0]) - 1, tuple(line[1:])
                if key_of(row[:width]) == key_bytes[index]:
                    found[index].append(row)
        return found

    def _where_key(
        self, key: Sequence[Any], filters: Sequence[tuple[int, KeyFilter]]
    ) -> sql.Composable:
        parts: list[sql.Composable] = [sql.SQL("TRUE")]
        by_column = dict(filters)
        for i, column in enumerate(self.layout.key):
            name = sql.Identifier("t", column.name)
            if key[i] is None:
                parts.append(sql.SQL("{} IS NULL").format(name))
            elif i in by_column:
                param = by_column[i].param(key[i])
                if param is IMPOSSIBLE:
                    return sql.SQL("FALSE")
                parts.append(by_column[i].predicate(name, sql.Literal(param)))
        return sql.SQL(" AND ").join(parts)

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
    # epoch milliseconds, cut; ±infinity as the int8 extremes (unreadable.finite_ms)
    "@ms": "CASE WHEN isfinite({0}) THEN floor(extract(epoch FROM {0}) * 1000)::int8 "
    "WHEN {0} > 'epoch' THEN 9223372036854775807 WHEN {0} < 'epoch' THEN -9223372036854775808 END",
    # the day number; ±infinity as the int4 extremes (unreadable.finite_days)
    "@days": "CASE WHEN isfinite({0}) THEN {0} - DATE '1970-01-01' "
    "WHEN {0} > 'epoch' THEN 2147483647 WHEN {0} < 'epoch' THEN -2147483648 END",
    # an interval's months, days and time, each apart: "<months>mo<days>d<nanoseconds>ns"
    "@interval": "(extract(year FROM {0}) * 12 + extract(month FROM {0}))::int8 || 'mo' || "
    "extract(day FROM {0})::int8 || 'd' || ((extract(hour FROM {0}) * 3600 + "
    "extract(minute FROM {0}) * 60) * 1000000 + extract(microseconds FROM {0}))::int8 * 1000 "
    "|| 'ns'",
    "@decimal": "trim_scale({})::text",  # no trailing zeros, no exponent
    "@f32": "{}::float8",  # a real's exact value
    "text": "{}::text",
}
_COPY_TYPES: dict[str, int | str] = {
    "@bytes": "bytea",
    "@ms": "int8",
    "@days": "int4",
    "@interval": "text",
    "@decimal": "text",
    "@f32": "float8",
    "text": "text",
}


def select_column(column: Column, alias: str | None = None) -> sql.Composable:
    """How the target's SELECT reads a column (its compare form, its type, or text)."""
    return _select(column, alias)


def copy_type(column: Column) -> int | str:
    """The binary COPY type of a column as ``select_column`` reads it."""
    return _COPY_TYPES.get(column.pg_read_as, column.pg_oid)


def _select(column: Column, alias: str | None = None) -> sql.Composable:
    name = sql.Identifier(alias, column.name) if alias else sql.Identifier(column.name)
    template = _COMPARE_FORMS.get(column.pg_read_as)
    return name if template is None else sql.SQL(template).format(name)


def key_filter(column: Column) -> KeyFilter | None:
    """The lookup predicate of a key column, its codec's for the target's type (None: no
    predicate serves every equal form)."""
    codec = CODECS.get(column.cql_type.name)
    if not column.pg_native or codec is None:
        return None
    found: KeyFilter | None = codec.key_filters.get(column.pg_type)
    return found
