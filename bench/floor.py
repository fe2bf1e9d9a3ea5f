"""The raw-read floors: how fast the stores hand over the compared columns, doing nothing
with the rows.

    .venv/bin/python bench/floor.py cassandra --rows N --mode threads --workers 4 \
        --ranges 32 --page-size 5000
    .venv/bin/python bench/floor.py postgres --rows N

**Cassandra**: a plain read of the same 10 columns through the same Python driver
(cassandra-driver, with its Cython row decoders), rows as tuples (``tuple_factory``),
token-aware, consistency ONE, the ring split into ``--ranges`` equal token ranges, each read
with ``SELECT ... WHERE token(id) > ? AND token(id) <= ?`` in pages of ``--page-size`` rows:

* ``--mode threads``: ``--workers`` threads, each reading whole ranges page after page
  (``session.execute`` / ``fetch_next_page``);
* ``--mode callbacks``: no thread of ours, ``--workers`` ranges in flight at once, each page
  requested from the previous page's callback on the driver's event loop
  (``execute_async`` / ``start_fetching_next_page``).

None of cdcrecon's code is imported.  The timer starts after connecting and preparing the
statement, and stops when the last page has arrived.

**PostgreSQL**: a raw binary ``COPY (SELECT the columns) TO STDOUT`` of the target table,
bytes only (timed from the connection on).

Prints one JSON line: ``{"seconds", "detail"}``; ``bench/run.py`` adds the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg  # noqa: E402
from cassandra.cluster import ResponseFuture, Session  # noqa: E402
from cassandra.query import PreparedStatement  # noqa: E402
from dataset import COLUMNS, table_name  # noqa: E402
from psycopg import sql  # noqa: E402
from stores import KEYSPACE, cassandra_cluster, connect_target  # noqa: E402

TOKEN_MIN, TOKEN_MAX = -(2**63), 2**63 - 1  # Murmur3Partitioner; no key has TOKEN_MIN


def token_ranges(count: int) -> list[tuple[int, int]]:
    """``count`` contiguous ranges (start, end] covering the whole ring."""
    span = (TOKEN_MAX - TOKEN_MIN) // count
    bounds = [TOKEN_MIN + span * i for i in range(count)] + [TOKEN_MAX]
    return list(zip(bounds, bounds[1:], strict=False))


def read_with_threads(
    session: Session, statement: PreparedStatement, ranges: list[tuple[int, int]], threads: int
) -> int:
    def read_range(bounds: tuple[int, int]) -> int:
        result = session.execute(statement, bounds)
        count = len(result.current_rows)
        while result.has_more_pages:
            result.fetch_next_page()
            count += len(result.current_rows)
        return count

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(read_range, ranges))


def read_with_callbacks(
    session: Session, statement: PreparedStatement, ranges: list[tuple[int, int]], in_flight: int
) -> int:
    pending = list(reversed(ranges))
    lock = threading.RLock()  # a callback may run at once, in add_callbacks
    done = threading.Event()
    state: dict[str, Any] = {"rows": 0, "running": 0, "error": None}

    def start_next() -> None:  # called with the lock held
        if pending:
            state["running"] += 1
            future = session.execute_async(statement, pending.pop())
            future.add_callbacks(on_page, on_error, callback_args=(future,))
        elif state["running"] == 0:
            done.set()

    def on_page(rows: list[Any], future: ResponseFuture) -> None:
        with lock:
            state["rows"] += len(rows)
        if future.has_more_pages:
            future.start_fetching_next_page()
            return
        with lock:
            state["running"] -= 1
            start_next()

    def on_error(exc: BaseException, future: ResponseFuture) -> None:
        state["error"] = exc
        done.set()

    with lock:
        for _ in range(in_flight):
            start_next()
    done.wait()
    if state["error"] is not None:
        raise state["error"]
    return int(state["rows"])


def floor_cassandra(rows: int, mode: str, workers: int, ranges: int, page_size: int) -> None:
    cluster = cassandra_cluster()
    try:
        session = cluster.connect()
        statement = session.prepare(
            f"SELECT {', '.join(COLUMNS)} FROM {KEYSPACE}.{table_name(rows)} "
            "WHERE token(id) > ? AND token(id) <= ?"
        )
        statement.fetch_size = page_size
        read = read_with_threads if mode == "threads" else read_with_callbacks
        started = time.perf_counter()
        count = read(session, statement, token_ranges(ranges), workers)
        seconds = time.perf_counter() - started
    finally:
        cluster.shutdown()
    emit(seconds, {"rows": count})


def floor_postgres(rows: int) -> None:
    size = 0
    started = time.perf_counter()
    with connect_target() as conn, conn.cursor() as cur:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        query = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT BINARY)").format(
            sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), sql.Identifier(table_name(rows))
        )
        with cur.copy(query) as copy:
            for chunk in copy:
                size += len(chunk)
    emit(time.perf_counter() - started, {"bytes": size})


def emit(seconds: float, detail: dict[str, Any]) -> None:
    print(json.dumps({"seconds": seconds, "detail": detail}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("store", choices=["cassandra", "postgres"])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--mode", choices=["threads", "callbacks"], default="threads")
    parser.add_argument("--workers", type=int, default=4, help="threads, or ranges in flight")
    parser.add_argument("--ranges", type=int, default=32)
    parser.add_argument("--page-size", type=int, default=5000)
    args = parser.parse_args()
    if args.store == "cassandra":
        floor_cassandra(args.rows, args.mode, args.workers, args.ranges, args.page_size)
    else:
        floor_postgres(args.rows)


if __name__ == "__main__":
    main()
