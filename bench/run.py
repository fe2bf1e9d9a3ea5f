"""Benchmark of the diff engine against its raw-read floor (``make bench``).

    BENCH_ROWS=1000000 .venv/bin/python bench/run.py [--reload] [--only CHECKSUM,...]

Builds (once per size) a 10-column table of mixed types with BENCH_ROWS rows in Cassandra
(keyspace ``cdcrecon_bench``, concurrent prepared inserts) and PostgreSQL (database
``warehouse_bench``, COPY), with a known number of differences: 0.1% of the rows missing
on the target, 0.1% changed on the target, 0.05% extra rows on the target.  Then, each in
a fresh subprocess that reports its wall time and peak RSS:

* the **floor**: the fastest plain read of the same columns, doing nothing with the rows:
  Cassandra with the same driver, segments, paging and parallelism as the engine, and
  PostgreSQL with a raw binary COPY (bytes only);
* ROW_COUNT, CHECKSUM and SAMPLE through the engine (``reconciliation.engine``), its
  differences counted rather than stored, so the numbers are the engine's own.

CHECKSUM's mismatch count is checked against the known differences.  Nothing here is a
test: it prints a table.  It never touches the demo ``warehouse`` keyspace or database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cassandra import ConsistencyLevel  # noqa: E402
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session  # noqa: E402
from cassandra.concurrent import execute_concurrent_with_args  # noqa: E402
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy  # noqa: E402
from cassandra.query import dict_factory  # noqa: E402

from reconciliation.engine.cassandra import CassandraTable  # noqa: E402
from reconciliation.engine.schema import TableSpec, discover_layout  # noqa: E402
from reconciliation.engine.strategies import Difference, Engine, Options, plan_segments  # noqa: E402

KEYSPACE = "cdcrecon_bench"
DATABASE = "warehouse_bench"
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


# -- data ---------------------------------------------------------------------------------------


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


def expected_differences(rows: int) -> Counter[str]:
    return Counter(
        MISSING_IN_POSTGRES=sum(1 for i in range(rows) if missing_on_target(i)),
        DATA_MISMATCH=sum(1 for i in range(rows) if changed_on_target(i)),
        MISSING_IN_CASSANDRA=extra_rows(rows),
    )


def extra_rows(rows: int) -> int:
    return rows // 2000


def table_name(rows: int) -> str:
    return f"items_{rows}"


# -- stores ---------------------------------------------------------------------------------------


def target_url(database: str = DATABASE) -> str:
    base = os.environ.get("TARGET_DATABASE_URL", "postgres://cdcrecon@127.0.0.1:5432/warehouse")
    return urlunsplit(urlsplit(base)._replace(path=f"/{database}"))


def connect_target() -> psycopg.Connection:
    return psycopg.connect(target_url())


def cassandra_session() -> tuple[Cluster, Session]:
    hosts = os.environ.get("CASSANDRA_HOSTS", "127.0.0.1").split(",")
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(
            DCAwareRoundRobinPolicy(local_dc=os.environ.get("CASSANDRA_LOCAL_DC", "datacenter1"))
        ),
        consistency_level=ConsistencyLevel.ONE,
        request_timeout=120,
        row_factory=dict_factory,
    )
    cluster = Cluster(
        hosts,
        port=int(os.environ.get("CASSANDRA_PORT", "9042")),
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
    )
    return cluster, cluster.connect()


def spec(rows: int) -> TableSpec:
    return TableSpec(
        name=table_name(rows),
        cassandra_keyspace=KEYSPACE,
        cassandra_table=table_name(rows),
        postgres_schema="public",
        postgres_table=table_name(rows),
        partition_key=("id",),
        timestamp_column="created_at",
    )


def loaded(rows: int) -> bool:
    try:
        with psycopg.connect(target_url()) as conn:
            found = conn.execute(
                "SELECT rows FROM bench_meta WHERE name = %s", (table_name(rows),)
            ).fetchone()
    except psycopg.Error:
        return False
    return bool(found and found[0] == rows)


def ensure_database() -> None:
    admin = target_url("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))


def load(rows: int) -> None:
    name = table_name(rows)
    ensure_database()
    cluster, session = cassandra_session()
    try:
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} WITH replication = "
            "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        session.execute(f"DROP TABLE IF EXISTS {KEYSPACE}.{name}")
        session.execute(f"CREATE TABLE {KEYSPACE}.{name} ({CASSANDRA_COLUMNS})")
        insert = session.prepare(
            f"INSERT INTO {KEYSPACE}.{name} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
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
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(name), sql.SQL(POSTGRES_COLUMNS))
        )
        with conn.cursor().copy(
            sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
            )
        ) as copy:
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
        conn.execute("INSERT INTO bench_meta VALUES (%s, %s)", (name, rows))
    print(f"  postgresql: COPY in {time.monotonic() - started:.0f} s", file=sys.stderr)


# -- measurements (each runs in its own process) ----------------------------------------------


def engine_options() -> Options:
    return Options(
        consistency=ConsistencyLevel.ONE,
        recheck_delay_seconds=0.0,
        sample_size=1000,
        seed=1,
        target_url=target_url(),
    )


def floor_cassandra(rows: int) -> dict[str, Any]:
    cluster, session = cassandra_session()
    try:
        with connect_target() as conn:
            layout = discover_layout(session, conn, spec(rows))
        options = engine_options()
        table = CassandraTable(
            session,
            layout,
            options.consistency,
            page_size=options.page_size,
            parallel=options.parallel,
        )
        segments = plan_segments(options, rows)
        count = 0
        for page in table.stream(segments):
            count += len(page)
        return {"rows": count}
    finally:
        cluster.shutdown()


def floor_postgres(rows: int) -> dict[str, Any]:
    size = 0
    with connect_target() as conn, conn.cursor() as cur:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        query = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT BINARY)").format(
            sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), sql.Identifier(table_name(rows))
        )
        with cur.copy(query) as copy:
            for chunk in copy:
                size += len(chunk)
    return {"bytes": size}


def strategy(name: str, rows: int) -> dict[str, Any]:
    found: Counter[str] = Counter()

    def report(difference: Difference) -> None:
        found[difference.mismatch_type] += 1

    cluster, session = cassandra_session()
    try:
        engine = Engine(spec(rows), session, connect_target, engine_options(), report)
        outcome = engine.run(name)
    finally:
        cluster.shutdown()
    CHILD_PEAK.append(engine.child_peak_rss_mb or 0.0)
    return {
        "cassandra_rows": outcome.cassandra_row_count,
        "postgres_rows": outcome.postgres_row_count,
        "keys_examined": outcome.keys_examined,
        "mismatches": outcome.mismatch_count,
        "by_type": dict(found),
        "drift": round(outcome.drift_percentage, 4),
        "ci": [outcome.drift_ci_low, outcome.drift_ci_high],
    }


CHILD_PEAK: list[float] = []  # the target's child process (VmHWM), when a strategy had one

MEASURES = {
    "floor_cassandra": floor_cassandra,
    "floor_postgres": floor_postgres,
    "ROW_COUNT": lambda rows: strategy("ROW_COUNT", rows),
    "CHECKSUM": lambda rows: strategy("CHECKSUM", rows),
    "SAMPLE": lambda rows: strategy("SAMPLE", rows),
}


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM; ru_maxrss would include the parent's, across exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(measure: str, rows: int) -> None:
    started = time.perf_counter()
    detail = MEASURES[measure](rows)
    seconds = time.perf_counter() - started
    # A strategy may read the target in a child process of its own, at the same time: the
    # job's peak is at most the sum of both peaks.
    child_mb = max(CHILD_PEAK, default=0.0)
    peak_mb = peak_rss_mb() + child_mb
    detail["rss_mb"] = f"{peak_rss_mb():.0f}+{child_mb:.0f}" if child_mb else None
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_mb, "detail": detail}))


def measure(name: str, rows: int) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, __file__, "--child", name, "--rows", str(rows)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"{name} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def report_table(rows: int, results: dict[str, dict[str, Any]]) -> Iterator[str]:
    floor = results["floor_cassandra"]["seconds"] + results["floor_postgres"]["seconds"]
    yield f"\ncdcrecon engine benchmark: {rows:,} rows x 10 columns (cpus: {os.cpu_count()})"
    yield f"{'measure':<18}{'wall s':>9}{'rows/s':>12}{'x floor':>9}{'peak RSS MB':>13}  result"
    for name, result in results.items():
        seconds = result["seconds"]
        detail = result["detail"]
        summary = ", ".join(f"{k}={v}" for k, v in detail.items() if v not in (None, [None, None]))
        yield (
            f"{name:<18}{seconds:>9.2f}{rows / seconds:>12,.0f}{seconds / floor:>9.2f}"
            f"{result['peak_rss_mb']:>13.0f}  {summary}"
        )
    yield f"{'floor (C* + PG)':<18}{floor:>9.2f}{rows / floor:>12,.0f}{1:>9.2f}"
    if "CHECKSUM" in results:
        expected = dict(expected_differences(rows))
        found = results["CHECKSUM"]["detail"]["by_type"]
        verdict = "exactly as planted" if found == expected else f"EXPECTED {expected}"
        yield f"CHECKSUM / floor = {results['CHECKSUM']['seconds'] / floor:.2f}; differences {verdict}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=int(os.environ.get("BENCH_ROWS", "1000000")))
    parser.add_argument("--reload", action="store_true", help="Load the data again.")
    parser.add_argument("--only", help="Comma-separated measures (default: all).")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--no-wide", action="store_true", help="Skip the wide-partition benchmark.")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.rows)
        return
    if args.reload or not loaded(args.rows):
        print(f"Loading {args.rows:,} rows into {KEYSPACE} and {DATABASE} ...", file=sys.stderr)
        load(args.rows)
    names = args.only.split(",") if args.only else list(MEASURES)
    results: dict[str, dict[str, Any]] = {}
    for name in [
        "floor_cassandra",
        "floor_postgres",
        *[n for n in names if not n.startswith("floor")],
    ]:
        print(f"  measuring {name} ...", file=sys.stderr)
        results[name] = measure(name, args.rows)
    print("\n".join(report_table(args.rows, results)))
    if not args.no_wide:  # one partition of BENCH_WIDE_ROWS rows (bench/wide_partition.py)
        subprocess.run(
            [sys.executable, str(Path(__file__).with_name("wide_partition.py"))], check=True
        )


if __name__ == "__main__":
    main()
