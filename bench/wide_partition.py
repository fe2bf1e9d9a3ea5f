"""Benchmark: CHECKSUM over ONE wide partition (``make bench`` runs it after ``run.py``).

    BENCH_WIDE_ROWS=1000000 .venv/bin/python bench/wide_partition.py [--reload]

Builds (once per size) ``cdcrecon_bench.wide_<rows>``: ``(p int, c int, v text, n int,
PRIMARY KEY (p, c))`` with every row in partition ``p = 0``, and its PostgreSQL copy in
``warehouse_bench``, with a handful of planted differences (2 rows missing on the target,
2 changed, 1 extra).  Then runs CHECKSUM through the engine in a fresh subprocess and prints
its wall time and its peak RSS (VmHWM), and whether exactly the planted differences were
found.  Memory must not grow with the partition's width: the merge streams
a wide partition through an external sort (``reconciliation/engine/merge.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import stores as base  # noqa: E402
from cassandra import ConsistencyLevel  # noqa: E402
from cassandra.concurrent import execute_concurrent_with_args  # noqa: E402
from cassandra.query import dict_factory  # noqa: E402

from reconciliation.engine import Difference, Engine, Options  # noqa: E402
from reconciliation.engine.schema import TableSpec  # noqa: E402

MISSING = (11, 500_001)
CHANGED = (12, 700_002)
EXTRA = 10**9


def engine_options() -> Options:
    return Options(
        consistency=ConsistencyLevel.ONE,
        recheck_delay_seconds=0.0,
        sample_size=1000,
        seed=1,
    )


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM; ru_maxrss would include the parent's, across exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def table_name(rows: int) -> str:
    return f"wide_{rows}"


def planted(rows: int) -> dict[str, int]:
    return {
        "MISSING_IN_POSTGRES": sum(1 for c in MISSING if c < rows),
        "DATA_MISMATCH": sum(1 for c in CHANGED if c < rows),
        "MISSING_IN_CASSANDRA": 1,
    }


def spec(rows: int) -> TableSpec:
    name = table_name(rows)
    return TableSpec(
        name=name,
        cassandra_keyspace=base.KEYSPACE,
        cassandra_table=name,
        postgres_schema="public",
        postgres_table=name,
        partition_key=("p",),
        clustering=("c",),
    )


def loaded(rows: int) -> bool:
    try:
        with psycopg.connect(base.target_url()) as conn:
            found = conn.execute(
                "SELECT rows FROM bench_meta WHERE name = %s", (table_name(rows),)
            ).fetchone()
    except psycopg.Error:
        return False
    return bool(found and found[0] == rows)


def load(rows: int) -> None:
    name = table_name(rows)
    base.ensure_database(base.target_url())
    cluster, session = base.cassandra_session(dict_factory)
    try:
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {base.KEYSPACE} WITH replication = "
            "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        session.execute(f"DROP TABLE IF EXISTS {base.KEYSPACE}.{name}")
        session.execute(
            f"CREATE TABLE {base.KEYSPACE}.{name} (p int, c int, v text, n int, PRIMARY KEY (p, c))"
        )
        insert = session.prepare(
            f"INSERT INTO {base.KEYSPACE}.{name} (p, c, v, n) VALUES (0, ?, ?, ?)"
        )
        started = time.monotonic()
        for start in range(0, rows, 50_000):
            batch = [(c, f"value {c}", c % 977) for c in range(start, min(rows, start + 50_000))]
            execute_concurrent_with_args(session, insert, batch, concurrency=128)
            print(f"\r  cassandra: {start + len(batch):,} rows", end="", file=sys.stderr)
        print(f" in {time.monotonic() - started:.0f} s", file=sys.stderr)
    finally:
        cluster.shutdown()
    with psycopg.connect(base.target_url(), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_meta (name text PRIMARY KEY, rows bigint)")
        conn.execute("DELETE FROM bench_meta WHERE name = %s", (name,))
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("CREATE TABLE {} (p int, c int, v text, n int, PRIMARY KEY (p, c))").format(
                sql.Identifier(name)
            )
        )
        with conn.cursor().copy(
            sql.SQL("COPY {} (p, c, v, n) FROM STDIN").format(sql.Identifier(name))
        ) as copy:
            for c in range(rows):
                if c in MISSING:
                    continue
                copy.write_row((0, c, f"value {c}", c % 977 + (1 if c in CHANGED else 0)))
            copy.write_row((0, EXTRA, "extra", 0))
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(name)))
        conn.execute("INSERT INTO bench_meta VALUES (%s, %s)", (name, rows))


def checksum(rows: int) -> dict[str, Any]:
    found: Counter[str] = Counter()

    def report(difference: Difference) -> None:
        found[difference.mismatch_type] += 1

    cluster, session = base.cassandra_session(dict_factory)
    started = time.perf_counter()
    try:
        engine = Engine(spec(rows), session, base.connect_target, engine_options(), report)
        outcome = engine.run("CHECKSUM")
    finally:
        cluster.shutdown()
    seconds = time.perf_counter() - started
    own, child = peak_rss_mb(), 0.0
    return {
        "seconds": seconds,
        "peak_rss_mb": own + child,
        "rss_split": f"{own:.0f}+{child:.0f}",
        "rows": [outcome.cassandra_row_count, outcome.postgres_row_count],
        "by_type": dict(found),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows", type=int, default=int(os.environ.get("BENCH_WIDE_ROWS", "1000000"))
    )
    parser.add_argument("--reload", action="store_true", help="Load the data again.")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(checksum(args.rows)))
        return
    if args.reload or not loaded(args.rows):
        print(f"Loading one partition of {args.rows:,} rows ...", file=sys.stderr)
        load(args.rows)
    result = subprocess.run(
        [sys.executable, __file__, "--child", "--rows", str(args.rows)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"wide-partition CHECKSUM failed:\n{result.stderr}")
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    verdict = (
        "exactly as planted"
        if measured["by_type"] == planted(args.rows)
        else f"EXPECTED {planted(args.rows)}"
    )
    print(
        f"\nwide partition: CHECKSUM over 1 partition of {args.rows:,} rows: "
        f"{measured['seconds']:.1f} s, peak RSS of the process tree "
        f"{measured['peak_rss_mb']:.0f} MB ({measured['rss_split']}), rows {measured['rows']}, "
        f"differences {measured['by_type']} {verdict}"
    )


if __name__ == "__main__":
    main()
