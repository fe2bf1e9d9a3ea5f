"""Benchmark: the outage case (``make bench`` runs it after ``run.py``).

    BENCH_OUTAGE_ROWS=200000 .venv/bin/python bench/outage.py [--reload]

Builds (once per size) ``cdcrecon_bench.outage_<rows>``, the bench's rows, and its copy in
``warehouse_bench`` with every other row missing: a pipeline that stopped half way.  Then
runs CHECKSUM on it in this process, with its verdicts (each missing row judged by its write
time), twice: decoding every row in the scan with write times (how a table whose last run
found many differences is read, and how every table was read before byte forms), and by
byte forms (the differing keys read again by key, with their write times).  Prints both
times and their ratio, and fails when either run does not find exactly the missing rows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))

import appdb  # noqa: E402
from cassandra.concurrent import execute_concurrent_with_args  # noqa: E402
from dataset import CASSANDRA_COLUMNS, COLUMNS, POSTGRES_COLUMNS, row  # noqa: E402
from inprocess import override_options  # noqa: E402
from stores import KEYSPACE, cassandra_session, ensure_database, setup_django, target_url  # noqa: E402


def table(rows: int) -> str:
    return f"outage_{rows}"


def loaded(rows: int) -> bool:
    try:
        with psycopg.connect(target_url()) as conn:
            found = conn.execute(
                "SELECT rows FROM bench_meta WHERE name = %s", (table(rows),)
            ).fetchone()
    except psycopg.Error:
        return False
    return bool(found and found[0] == rows)


def load(rows: int) -> None:
    name = table(rows)
    ensure_database(target_url())
    cluster, session = cassandra_session()
    try:
        session.execute(f"DROP TABLE IF EXISTS {KEYSPACE}.{name}")
        session.execute(f"CREATE TABLE {KEYSPACE}.{name} ({CASSANDRA_COLUMNS})")
        insert = session.prepare(
            f"INSERT INTO {KEYSPACE}.{name} ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(COLUMNS))})"
        )
        for start in range(0, rows, 50_000):
            batch = [row(i) for i in range(start, min(rows, start + 50_000))]
            execute_concurrent_with_args(session, insert, batch, concurrency=256)
    finally:
        cluster.shutdown()
    with psycopg.connect(target_url(), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_meta (name text PRIMARY KEY, rows bigint)")
        conn.execute("DELETE FROM bench_meta WHERE name = %s", (name,))
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(name), sql.SQL(POSTGRES_COLUMNS))
        )
        copy_into = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        )
        with conn.cursor().copy(copy_into) as copy:
            for i in range(0, rows, 2):  # the odd rows never arrived
                values = list(row(i))
                values[9] = sorted(values[9])
                copy.write_row(values)
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(name)))
        conn.execute("INSERT INTO bench_meta VALUES (%s, %s)", (name, rows))


def run(name: str, byte_forms: bool) -> dict[str, Any]:
    restore = override_options(byte_forms=byte_forms)
    try:
        appdb.reset(name)
        started = time.perf_counter()
        job = appdb.new_job(name, "CHECKSUM")
        appdb.run_here(job)
        seconds = time.perf_counter() - started
    finally:
        restore()
    return {"seconds": seconds, "detail": appdb.summary(job)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rows", type=int, default=int(os.environ.get("BENCH_OUTAGE_ROWS", "200000"))
    )
    parser.add_argument("--reload", action="store_true")
    args = parser.parse_args()
    name = table(args.rows)
    if args.reload or not loaded(args.rows):
        print(f"Loading the outage case ({args.rows:,} rows, half missing) ...", file=sys.stderr)
        load(args.rows)
    setup_django(name)
    appdb.register(name)
    decoded = run(name, byte_forms=False)
    by_bytes = run(name, byte_forms=True)
    expected = {"MISSING_IN_POSTGRES": args.rows // 2}
    print(
        f"\nOutage case: {args.rows:,} rows, half missing on the target, CHECKSUM with its verdicts"
    )
    print("| scan | seconds | differences |")
    print("|---|---:|---|")
    for label, result in (("decoded, write times in the scan", decoded), ("byte forms", by_bytes)):
        found = result["detail"].get("by_type")
        print(f"| {label} | {result['seconds']:.2f} | {json.dumps(found)} |")
    ratio = by_bytes["seconds"] / decoded["seconds"]
    print(
        f"byte forms ÷ decoded = {ratio:.2f} (a table whose last run found >= 2% differing keys is decoded)"
    )
    wrong = [r for r in (decoded, by_bytes) if r["detail"].get("by_type") != expected]
    if wrong:
        print(
            f"outage case: expected {expected}, found {[r['detail'] for r in wrong]}",
            file=sys.stderr,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
