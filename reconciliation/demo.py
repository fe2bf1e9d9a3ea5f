"""Demo data: keyspace `warehouse` with users, orders and sessions in Cassandra and their
CDC copies in the `warehouse` PostgreSQL database, with a little real drift of every kind.

Deterministic (seeded), so every fresh checkout shows the same drift:
  users    3,000 rows: 12 missing in PostgreSQL, 5 extra in PostgreSQL, 8 changed emails  (~0.8%)
  orders   5,000 rows: 60 missing in PostgreSQL, 10 totals off by a cent                   (~1.4%)
  sessions 4,000 rows: 250 missing in PostgreSQL                                           (~6.3%)
The target tables carry `_cdc_*` bookkeeping columns, which reconciliation ignores.
"""

from __future__ import annotations

import datetime as dt
import decimal
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args
from psycopg import sql
from psycopg.types.json import Jsonb

from reconciliation.engine.identifiers import cql_name, cql_table

EPOCH = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
Row = dict[str, Any]


@dataclass(frozen=True)
class DemoTable:
    name: str
    cassandra_columns: str
    postgres_columns: str
    make_rows: Callable[[random.Random], list[Row]]
    drift: Callable[[random.Random, list[Row]], tuple[list[Row], list[Row]]]
    # The rows missing in PostgreSQL were all written in one 5-minute window: a pipeline gap.
    gap: bool = False


def _ts(rng: random.Random, days: int = 25) -> dt.datetime:
    # Cassandra keeps milliseconds: generate at that precision so equal rows stay equal.
    return EPOCH + dt.timedelta(milliseconds=rng.randrange(days * 86_400_000))


def _users(rng: random.Random) -> list[Row]:
    tags = ["beta", "vip", "newsletter", "mobile", "churn-risk", "eu"]
    rows = []
    for i in range(1, 3001):
        created = _ts(rng)
        rows.append(
            {
                "id": f"user-{i:05d}",
                "email": f"user{i}@example.com",
                "full_name": f"User {i}",
                "tags": set(rng.sample(tags, rng.randrange(0, 4))),
                "preferences": {
                    "lang": rng.choice(["en", "de", "fr"]),
                    "theme": rng.choice(["dark", "light"]),
                },
                "created_at": created,
                "updated_at": created + dt.timedelta(hours=rng.randrange(0, 48)),
            }
        )
    return rows


def _users_drift(rng: random.Random, rows: list[Row]) -> tuple[list[Row], list[Row]]:
    cassandra = list(rows)
    picked = rng.sample(range(len(rows)), 20)
    missing, changed = set(picked[:12]), picked[12:]
    target = [dict(r) for i, r in enumerate(rows) if i not in missing]
    by_id = {r["id"]: r for r in target}
    for i in changed:
        by_id[rows[i]["id"]]["email"] = f"stale{i}@example.com"
    extra = [
        {**rows[0], "id": f"user-9{i:04d}", "email": f"ghost{i}@example.com"} for i in range(5)
    ]
    return cassandra, target + extra


def _orders(rng: random.Random) -> list[Row]:
    rows = []
    for _ in range(5000):
        placed = _ts(rng)
        rows.append(
            {
                "customer_id": f"user-{rng.randrange(1, 3001):05d}",
                "order_id": uuid.UUID(int=rng.getrandbits(128), version=4),
                "total": decimal.Decimal(rng.randrange(100, 100_000)) / 100,
                "currency": rng.choice(["EUR", "USD", "GBP"]),
                "status": rng.choice(["placed", "paid", "shipped", "delivered"]),
                "quantities": {
                    f"sku-{rng.randrange(1, 200)}": rng.randrange(1, 5)
                    for _ in range(rng.randrange(1, 4))
                },
                "placed_at": placed,
                "updated_at": placed + dt.timedelta(minutes=rng.randrange(0, 600)),
            }
        )
    return rows


def _orders_drift(rng: random.Random, rows: list[Row]) -> tuple[list[Row], list[Row]]:
    picked = rng.sample(range(len(rows)), 70)
    missing, changed = set(picked[:60]), set(picked[60:])
    target = []
    for i, row in enumerate(rows):
        if i in missing:
            continue
        copy = dict(row)
        if i in changed:
            copy["total"] = row["total"] + decimal.Decimal("0.01")
        target.append(copy)
    return rows, target


def _sessions(rng: random.Random) -> list[Row]:
    rows = []
    for _ in range(4000):
        started = _ts(rng)
        rows.append(
            {
                "session_id": uuid.UUID(int=rng.getrandbits(128), version=4),
                "user_id": f"user-{rng.randrange(1, 3001):05d}",
                "ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                "duration_seconds": rng.randrange(5, 7200),
                "attributes": {"agent": rng.choice(["ios", "android", "web"])},
                "started_at": started,
                "updated_at": started + dt.timedelta(seconds=rng.randrange(5, 7200)),
            }
        )
    return rows


def _sessions_drift(rng: random.Random, rows: list[Row]) -> tuple[list[Row], list[Row]]:
    missing = set(rng.sample(range(len(rows)), 250))
    return rows, [r for i, r in enumerate(rows) if i not in missing]


CDC_COLUMNS = "_cdc_ingested_at timestamptz NOT NULL DEFAULT now(), _cdc_operation text NOT NULL DEFAULT 'INSERT'"

TABLES = (
    DemoTable(
        "users",
        "id text PRIMARY KEY, email text, full_name text, tags set<text>, "
        "preferences map<text, text>, created_at timestamp, updated_at timestamp",
        "id text PRIMARY KEY, email text, full_name text, tags text[], preferences jsonb, "
        f"created_at timestamptz, updated_at timestamptz, {CDC_COLUMNS}",
        _users,
        _users_drift,
    ),
    DemoTable(
        "orders",
        "customer_id text, order_id uuid, total decimal, currency text, status text, "
        "quantities map<text, int>, placed_at timestamp, updated_at timestamp, "
        "PRIMARY KEY ((customer_id), order_id)",
        "customer_id text, order_id uuid, total numeric(12, 2), currency text, status text, "
        "quantities jsonb, placed_at timestamp, updated_at timestamptz, "
        f"{CDC_COLUMNS}, PRIMARY KEY (customer_id, order_id)",
        _orders,
        _orders_drift,
    ),
    DemoTable(
        "sessions",
        "session_id uuid PRIMARY KEY, user_id text, ip inet, duration_seconds int, "
        "attributes map<text, text>, started_at timestamp, updated_at timestamp",
        "session_id uuid PRIMARY KEY, user_id text, ip inet, duration_seconds integer, "
        f"attributes jsonb, started_at timestamptz, updated_at timestamptz, {CDC_COLUMNS}",
        _sessions,
        _sessions_drift,
        gap=True,
    ),
)

GAP = dt.timedelta(minutes=5)


def write_times(
    rng: random.Random, rows: list[Row], copied: list[Row], gap: bool, now: dt.datetime
) -> list[int]:
    """Each source row's write time (microseconds, for ``USING TIMESTAMP``): over the three
    days before ``now``, so none is within a CDC lag budget; with ``gap``, the rows that were
    not copied were written in one 5-minute window a day ago and no copied row was."""
    start = (now - dt.timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    present = {id(row) for row in copied}
    times = []
    for row in rows:
        if gap and id(row) not in present:
            when = start + dt.timedelta(seconds=rng.uniform(0, GAP.total_seconds() - 1))
        else:
            when = now - dt.timedelta(seconds=rng.uniform(3600, 3 * 86400))
            if gap and start - GAP <= when <= start + 2 * GAP:
                when -= 4 * GAP  # the pipeline was up outside the gap
        times.append(int(when.timestamp() * 1_000_000))
    return times


def _postgres_value(value: Any) -> Any:
    if isinstance(value, dict):
        return Jsonb(value)
    if isinstance(value, set):
        return sorted(value)
    return value


def _naive_utc(value: Any) -> Any:
    return value.replace(tzinfo=None) if isinstance(value, dt.datetime) else value


def _write_cassandra(
    session: Session, keyspace: str, table: DemoTable, rows: list[Row], written: list[int]
) -> None:
    session.execute(f"DROP TABLE IF EXISTS {cql_table(keyspace, table.name)}")
    session.execute(f"CREATE TABLE {cql_table(keyspace, table.name)} ({table.cassandra_columns})")
    columns = list(rows[0])
    insert = session.prepare(
        f"INSERT INTO {cql_table(keyspace, table.name)} ({', '.join(map(cql_name, columns))}) "
        f"VALUES ({', '.join('?' for _ in columns)}) USING TIMESTAMP ?"
    )
    execute_concurrent_with_args(
        session,
        insert,
        [(*(row[c] for c in columns), at) for row, at in zip(rows, written, strict=True)],
        concurrency=64,
        raise_on_first_error=True,
    )


def _write_postgres(
    conn: psycopg.Connection, schema: str, table: DemoTable, rows: list[Row]
) -> None:
    name = sql.Identifier(schema, table.name)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
    conn.execute(sql.SQL("CREATE TABLE {} (" + table.postgres_columns + ")").format(name))
    columns = list(rows[0])
    copy = sql.SQL("COPY {} ({}) FROM STDIN").format(
        name, sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    naive = {"placed_at"}  # a `timestamp without time zone` column, read as UTC
    with conn.cursor().copy(copy) as writer:
        for row in rows:
            writer.write_row(
                [_naive_utc(row[c]) if c in naive else _postgres_value(row[c]) for c in columns]
            )


def load(session: Session, keyspace: str, conn: psycopg.Connection, schema: str) -> Iterator[str]:
    """(Re)create the demo tables in both stores; yields a line per table."""
    cql_name(keyspace)
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {cql_name(keyspace)} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    for table in TABLES:
        rng = random.Random(f"cdcrecon-demo-{table.name}")
        rows = table.make_rows(rng)
        cassandra_rows, target_rows = table.drift(rng, rows)
        written = write_times(rng, cassandra_rows, target_rows, table.gap, dt.datetime.now(dt.UTC))
        _write_cassandra(session, keyspace, table, cassandra_rows, written)
        with conn.transaction():
            _write_postgres(conn, schema, table, target_rows)
        yield f"{table.name}: {len(cassandra_rows)} rows in Cassandra, {len(target_rows)} in PostgreSQL"


def is_loaded(session: Session, keyspace: str) -> bool:
    rows = session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,)
    )
    return {t.name for t in TABLES} <= {r["table_name"] for r in rows}
