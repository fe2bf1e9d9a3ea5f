"""The benchmark's table: BENCH_ROWS rows of 10 mixed-type columns, with planted differences.

Built once per size: ``cdcrecon_bench.items_<rows>`` in Cassandra (concurrent prepared
inserts) and ``warehouse_bench.public.items_<rows>`` in PostgreSQL (COPY), where 0.1% of the
rows are missing, 0.1% are changed (``qty`` + 1) and 0.05% more rows exist only there.
``load_source_copy`` copies the Cassandra rows, as read through the driver, into
``warehouse_bench_source.public.items_<rows>`` for the reladiff peer (reladiff does not
read Cassandra).
"""

from __future__ import annotations

import datetime as dt
import decimal
import sys
import time
import uuid
from collections import Counter
from typing import Any

import psycopg
from cassandra.concurrent import execute_concurrent_with_args
from psycopg import sql
from stores import KEYSPACE, SOURCE_DATABASE, cassandra_session, ensure_database, target_url

BASE_TIME = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
CASSANDRA_COLUMNS = (
    "id text PRIMARY KEY, name text, qty int, price decimal, weight double, ratio float, "
    "active boolean, created_at timestamp, owner uuid, tags set<text>"
)
POSTGRES_COLUMNS = (
    "id text PRIMARY KEY, name text, qty integer, price numeric(12, 2), "
    "weight double precision, ratio real, active boolean, created_at timestamptz, "
    "owner uuid, tags text[]"
)
COLUMNS = ["id", "name", "qty", "price", "weight", "ratio", "active", "created_at", "owner", "tags"]


def row(i: int) -> tuple[Any, ...]:
    return (
        f"item-{i:09d}",
        f"name {i}",
        i % 1000,
        decimal.Decimal(i % 100_000) / 100,
        i * 0.001,
        (i % 1000) / 8,
        i % 3 == 0,
        BASE_TIME + dt.timedelta(milliseconds=i * 37),
        uuid.UUID(int=i * 7919),
        {f"t{i % 5}", f"t{i % 7}"},
    )


def missing_on_target(i: int) -> bool:
    return i % 1000 == 1


def changed_on_target(i: int) -> bool:
    return i % 1000 == 2


def extra_rows(rows: int) -> int:
    return rows // 2000


def expected_differences(rows: int) -> dict[str, int]:
    return dict(
        Counter(
            MISSING_IN_POSTGRES=sum(1 for i in range(rows) if missing_on_target(i)),
            DATA_MISMATCH=sum(1 for i in range(rows) if changed_on_target(i)),
            MISSING_IN_CASSANDRA=extra_rows(rows),
        )
    )


def table_name(rows: int) -> str:
    return f"items_{rows}"


def _recorded(url: str, name: str, rows: int) -> bool:
    try:
        with psycopg.connect(url) as conn:
            found = conn.execute("SELECT rows FROM bench_meta WHERE name = %s", (name,)).fetchone()
    except psycopg.Error:
        return False
    return bool(found and found[0] == rows)


def _record(conn: psycopg.Connection[Any], name: str, rows: int) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS bench_meta (name text PRIMARY KEY, rows bigint)")
    conn.execute("DELETE FROM bench_meta WHERE name = %s", (name,))
    conn.execute("INSERT INTO bench_meta VALUES (%s, %s)", (name, rows))


def _create_table(conn: psycopg.Connection[Any], name: str) -> None:
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
    conn.execute(
        sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(name), sql.SQL(POSTGRES_COLUMNS))
    )


def _copy_into(name: str) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    )


def loaded(rows: int) -> bool:
    return _recorded(target_url(), table_name(rows), rows)


def load(rows: int) -> None:
    name = table_name(rows)
    ensure_database(target_url())
    cluster, session = cassandra_session()
    try:
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} WITH replication = "
            "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        session.execute(f"DROP TABLE IF EXISTS {KEYSPACE}.{name}")
        session.execute(f"CREATE TABLE {KEYSPACE}.{name} ({CASSANDRA_COLUMNS})")
        insert = session.prepare(
            f"INSERT INTO {KEYSPACE}.{name} ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(COLUMNS))})"
        )
        started = time.monotonic()
        for start in range(0, rows, 50_000):
            batch = [row(i) for i in range(start, min(rows, start + 50_000))]
            execute_concurrent_with_args(session, insert, batch, concurrency=256)
            print(f"\r  cassandra: {start + len(batch):,} rows", end="", file=sys.stderr)
        print(f" in {time.monotonic() - started:.0f} s", file=sys.stderr)
    finally:
        cluster.shutdown()

    started = time.monotonic()
    with psycopg.connect(target_url(), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_meta (name text PRIMARY KEY, rows bigint)")
        conn.execute("DELETE FROM bench_meta WHERE name = %s", (name,))
        _create_table(conn, name)
        with conn.cursor().copy(_copy_into(name)) as copy:
            for i in range(rows):
                if missing_on_target(i):
                    continue
                values = list(row(i))
                values[9] = sorted(values[9])
                if changed_on_target(i):
                    values[2] += 1
                copy.write_row(values)
            for j in range(extra_rows(rows)):
                copy.write_row(
                    (f"extra-{j:09d}", "extra", 0, 0, 0.0, 0.0, False, BASE_TIME, None, None)
                )
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(name)))
        _record(conn, name, rows)
    print(f"  postgresql: COPY in {time.monotonic() - started:.0f} s", file=sys.stderr)


def source_copy_loaded(rows: int) -> bool:
    return _recorded(target_url(SOURCE_DATABASE), table_name(rows), rows)


def load_source_copy(rows: int) -> None:
    """Copy the Cassandra table, as the driver reads it, into a PostgreSQL table of the same
    shape as the target (sets become sorted arrays, as the CDC pipeline writes them)."""
    name = table_name(rows)
    url = target_url(SOURCE_DATABASE)
    ensure_database(url)
    started = time.monotonic()
    cluster, session = cassandra_session()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            _create_table(conn, name)
            with conn.cursor().copy(_copy_into(name)) as copy:
                query = f"SELECT {', '.join(COLUMNS)} FROM {KEYSPACE}.{name}"
                statement = session.prepare(query)
                statement.fetch_size = 10_000
                copied = 0
                for values in session.execute(statement):
                    values = list(values)
                    values[9] = sorted(values[9] or ())
                    copy.write_row(values)
                    copied += 1
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(name)))
            _record(conn, name, copied)
    finally:
        cluster.shutdown()
    print(
        f"  source copy for reladiff: {copied:,} rows in {time.monotonic() - started:.0f} s",
        file=sys.stderr,
    )
