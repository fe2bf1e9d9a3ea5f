"""The live demo's writer: the demo tables loaded into Cassandra and copied by the pipeline.

    python -m pipeline.writer load    # create users/orders/sessions WITH cdc = true, write them
    python -m pipeline.writer run     # then keep writing, tens of writes a second, until killed

Unlike ``manage.py load_demo_data`` (which writes both stores itself, with drift made on
purpose), the target tables here start empty and only the sink fills them: every difference
cdcrecon finds afterwards is the pipeline's own doing. The rows are the demo's
(``reconciliation.demo``), with the same write times in the three days before the load.
Environment: ``CASSANDRA_HOSTS`` [127.0.0.1], ``CASSANDRA_PORT`` [9042], ``CASSANDRA_KEYSPACE``
[warehouse], ``TARGET_DATABASE_URL`` [postgres://cdcrecon@127.0.0.1:5432/warehouse],
``POSTGRES_SCHEMA`` [public], ``PIPELINE_WRITES_PER_SECOND`` [20].
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import os
import random
import sys
import time
import uuid
from collections.abc import Sequence

import psycopg
from cassandra.cluster import Cluster, Session
from cassandra.concurrent import execute_concurrent_with_args
from psycopg import sql

from pipeline import control
from reconciliation import demo
from reconciliation.engine.identifiers import cql_column, cql_name, cql_table


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def connect_cassandra() -> Session:
    hosts = _env("CASSANDRA_HOSTS", "127.0.0.1").split(",")
    cluster = Cluster(hosts, port=int(_env("CASSANDRA_PORT", "9042")), protocol_version=5)
    return cluster.connect()


def target_url() -> str:
    return _env("TARGET_DATABASE_URL", "postgres://cdcrecon@127.0.0.1:5432/warehouse")


def create_tables(session: Session, conn: psycopg.Connection, keyspace: str, schema: str) -> None:
    """The demo tables, empty, in both stores; Cassandra's WITH cdc = true, captured by the agent.

    The keyspace is created (and seen by the agent) before its tables: see
    ``control.wait_for_keyspace``."""
    control.require()
    offset = control.log_size()
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {cql_name(keyspace)} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    control.wait_for_keyspace(keyspace, offset)
    offset = control.log_size()
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    for table in demo.TABLES:
        session.execute(f"DROP TABLE IF EXISTS {cql_table(keyspace, table.name)}")
        session.execute(
            f"CREATE TABLE {cql_table(keyspace, table.name)} ({table.cassandra_columns}) "
            "WITH cdc = true"
        )
        name = sql.Identifier(schema, table.name)
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
        conn.execute(sql.SQL("CREATE TABLE {} (" + table.postgres_columns + ")").format(name))
    control.wait_for_tables(keyspace, [t.name for t in demo.TABLES], offset)


def loaded_with_cdc(session: Session, keyspace: str) -> bool:
    """Whether the demo tables exist and are captured (so a second `make run` keeps them)."""
    rows = session.execute(
        "SELECT table_name, cdc FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,)
    )
    captured = {r.table_name for r in rows if r.cdc}
    return {t.name for t in demo.TABLES} <= captured


def load(session: Session, conn: psycopg.Connection, keyspace: str, schema: str) -> None:
    """Create the tables and write every demo row into Cassandra only."""
    create_tables(session, conn, keyspace, schema)
    now = dt.datetime.now(dt.UTC)
    for table in demo.TABLES:
        rng = random.Random(f"cdcrecon-demo-{table.name}")
        rows = table.make_rows(rng)
        written = demo.write_times(rng, rows, rows, False, now)
        columns = list(rows[0])
        insert = session.prepare(
            f"INSERT INTO {cql_table(keyspace, table.name)} "
            f"({', '.join(map(cql_column, columns))}) "
            f"VALUES ({', '.join('?' for _ in columns)}) USING TIMESTAMP ?"
        )
        execute_concurrent_with_args(
            session,
            insert,
            [(*(row[c] for c in columns), at) for row, at in zip(rows, written, strict=True)],
            concurrency=32,
            raise_on_first_error=True,
        )
        print(f"{table.name}: {len(rows)} rows written to Cassandra; the sink copies them")


def write_forever(session: Session, keyspace: str, per_second: float) -> None:
    """Small live traffic: new sessions, users' emails changed, orders' statuses moved on."""
    rng = random.Random()
    users = [r.id for r in session.execute(f"SELECT id FROM {cql_table(keyspace, 'users')}")]
    new_session = session.prepare(
        f"INSERT INTO {cql_table(keyspace, 'sessions')} (session_id, user_id, ip, "
        "duration_seconds, attributes, started_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
    )
    new_email = session.prepare(
        f"UPDATE {cql_table(keyspace, 'users')} SET email = ?, updated_at = ? WHERE id = ?"
    )
    new_order = session.prepare(
        f"INSERT INTO {cql_table(keyspace, 'orders')} (customer_id, order_id, total, currency, "
        "status, placed_at, updated_at) VALUES (?, ?, ?, 'EUR', 'placed', ?, ?)"
    )
    count = 0
    started = time.monotonic()
    while True:
        now = dt.datetime.now(dt.UTC)
        user = rng.choice(users)
        kind = rng.random()
        if kind < 0.5:
            session.execute(
                new_session,
                (uuid.uuid4(), user, "10.0.0.1", rng.randint(1, 3600), {"src": "writer"}, now, now),
            )
        elif kind < 0.8:
            session.execute(new_email, (f"{user}+{count}@example.com", now, user))
        else:
            total = decimal.Decimal(rng.randint(100, 99999)) / 100
            session.execute(new_order, (user, uuid.uuid4(), total, now, now))
        count += 1
        if count % 500 == 0:
            print(f"writer: {count} writes", flush=True)
        time.sleep(max(0.0, started + count / per_second - time.monotonic()))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The live demo's writer (pipeline/writer.py).")
    parser.add_argument("command", choices=["load", "run"])
    parser.add_argument(
        "--if-needed", action="store_true", help="load: only if the tables are not there yet"
    )
    args = parser.parse_args(argv)
    keyspace = _env("CASSANDRA_KEYSPACE", "warehouse")
    schema = _env("POSTGRES_SCHEMA", "public")
    session = connect_cassandra()
    try:
        if args.command == "load" and args.if_needed and loaded_with_cdc(session, keyspace):
            print(f"Demo tables already captured in keyspace {keyspace}.")
        elif args.command == "load":
            with psycopg.connect(target_url(), autocommit=True) as conn:
                load(session, conn, keyspace, schema)
        else:
            write_forever(session, keyspace, float(_env("PIPELINE_WRITES_PER_SECOND", "20")))
    except control.PipelineDown as exc:
        sys.exit(f"pipeline: {exc}")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
