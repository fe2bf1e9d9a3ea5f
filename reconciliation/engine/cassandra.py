"""Reading the source table: by token range, paged, in token order, with bounded memory.

The Murmur3 ring ``(-2**63, 2**63 - 1]`` is split into equal segments; each segment is one
paged ``SELECT token(pk), … WHERE token(pk) > ? AND token(pk) <= ?`` (prepared, at the
configured consistency).  A few segments are read concurrently by worker threads, each
handing over at most ``PAGES_AHEAD`` pages through a bounded queue, and the rows are
yielded segment after segment, so the caller sees the whole table in token order while
holding at most ``parallel × PAGES_AHEAD × page_size`` rows.

``partition_token`` computes the same token in Python for a key read from PostgreSQL (the
key serialised as Cassandra does, hashed with the driver's C Murmur3), which is what lets
the engine merge the two stores in token order.
"""

from __future__ import annotations

import queue
import random
import struct
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cassandra.cluster import EXEC_PROFILE_DEFAULT, ResponseFuture, Session
from cassandra.query import BoundStatement, PreparedStatement, tuple_factory

from reconciliation.engine.canonical import key_text
from reconciliation.engine.identifiers import cql_column, cql_table
from reconciliation.engine.keys import BadKey, parse_key_part
from reconciliation.engine.records import (
    MAX_TOKEN,
    MIN_TOKEN,
    fast_token_function,
    murmur3_token,
)
from reconciliation.engine.schema import Layout, Window

PAGES_AHEAD = 2
_END = object()


def token_segments(count: int) -> list[tuple[int, int]]:
    """``count`` contiguous (start, end] ranges covering the whole Murmur3 ring, in order."""
    count = max(1, count)
    span = MAX_TOKEN - MIN_TOKEN
    bounds = [MIN_TOKEN + span * i // count for i in range(count)] + [MAX_TOKEN]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


class CassandraTable:
    """The source side of one reconciliation: scans, counts, lookups and samples."""

    def __init__(
        self,
        session: Session,
        layout: Layout,
        consistency: int,
        *,
        page_size: int = 5000,
        parallel: int = 4,
    ) -> None:
        self.session = session
        self.layout = layout
        self.consistency = consistency
        self.page_size = page_size
        self.parallel = parallel
        self.profile = session.execution_profile_clone_update(
            EXEC_PROFILE_DEFAULT, row_factory=tuple_factory, consistency_level=consistency
        )
        spec = layout.spec
        self.table = cql_table(spec.cassandra_keyspace, spec.cassandra_table)
        self.token_expr = f"token({', '.join(cql_column(n) for n in spec.partition_key)})"
        self.selected = ", ".join(cql_column(c.name) for c in layout.columns)
        self._prepared: dict[str, PreparedStatement] = {}
        key_predicate = " AND ".join(f"{cql_column(c.name)} = ?" for c in layout.key)
        self.lookup_statement = self._prepare(
            f"SELECT {self.token_expr}, {self.selected} FROM {self.table} WHERE {key_predicate}"
        )
        metadata = self.lookup_statement.column_metadata
        self._partition_types = [metadata[i].type for i in range(len(layout.partition))]
        self._protocol = session.cluster.protocol_version

    # -- statements -------------------------------------------------------------------------

    def _prepare(self, query: str) -> PreparedStatement:
        if query not in self._prepared:
            statement = self.session.prepare(query)
            statement.consistency_level = self.consistency
            self._prepared[query] = statement
        return self._prepared[query]

    def _range_query(self, columns: str, window: Window | None) -> PreparedStatement:
        query = (
            f"SELECT {columns} FROM {self.table} "
            f"WHERE {self.token_expr} > ? AND {self.token_expr} <= ?"
        )
        if window is not None:
            column = cql_column(window.column)
            query += f" AND {column} >= ? AND {column} < ? ALLOW FILTERING"
        return self._prepare(query)

    def _bind(
        self, statement: PreparedStatement, values: Sequence[Any], fetch_size: int | None = None
    ) -> BoundStatement:
        bound = statement.bind(values)
        bound.consistency_level = self.consistency
        if fetch_size is not None:
            bound.fetch_size = fetch_size
        return bound

    def _execute_async(self, statement: BoundStatement) -> ResponseFuture:
        return self.session.execute_async(statement, execution_profile=self.profile)

    # -- scans --------------------------------------------------------------------------------

    def stream(
        self,
        segments: Sequence[tuple[int, int]],
        window: Window | None = None,
        *,
        on_segment_done: Callable[[int], None] | None = None,
    ) -> Generator[list[tuple[Any, ...]], None, None]:
        """Pages of rows ``(token, *compared columns)`` over ``segments``, in token order."""
        statement = self._range_query(f"{self.token_expr}, {self.selected}", window)
        extra = [] if window is None else [window.start, window.end]
        yield from self._ordered_pages(
            [self._bind(statement, [s, e, *extra], self.page_size) for s, e in segments],
            on_segment_done,
        )

    def _ordered_pages(
        self,
        statements: Sequence[BoundStatement],
        on_segment_done: Callable[[int], None] | None,
    ) -> Iterator[list[tuple[Any, ...]]]:
        stop = threading.Event()
        pending: deque[queue.Queue[Any]] = deque()
        upcoming = iter(statements)

        def fill(statement: BoundStatement, pages: queue.Queue[Any]) -> None:
            try:
                result = self.session.execute(statement, execution_profile=self.profile)
                while True:
                    if not _put(pages, result.current_rows, stop):
                        return
                    if not result.has_more_pages:
                        break
                    result.fetch_next_page()
                _put(pages, _END, stop)
            except BaseException as exc:  # handed to the consumer, which raises it
                _put(pages, exc, stop)

        with ThreadPoolExecutor(self.parallel, thread_name_prefix="cdcrecon-scan") as pool:

            def start_next() -> None:
                statement = next(upcoming, None)
                if statement is not None:
                    pages: queue.Queue[Any] = queue.Queue(maxsize=PAGES_AHEAD)
                    pool.submit(fill, statement, pages)
                    pending.append(pages)

            try:
                for _ in range(self.parallel):
                    start_next()
                done = 0
                while pending:
                    page = pending[0].get()
                    if page is _END:
                        pending.popleft()
                        done += 1
                        if on_segment_done is not None:
                            on_segment_done(done)
                        start_next()
                    elif isinstance(page, BaseException):
                        raise page
                    elif page:
                        yield page
            finally:
                stop.set()

    def count(self, segments: Sequence[tuple[int, int]]) -> int:
        """The row count, one ``count(*)`` per token segment (never a whole-table count)."""
        statement = self._range_query("count(*)", None)
        return sum(
            int(rows[0][0])
            for rows in self._execute_all([self._bind(statement, s) for s in segments])
        )

    def _execute_all(
        self, statements: Sequence[BoundStatement], concurrency: int = 32
    ) -> list[list[tuple[Any, ...]]]:
        """Every statement's rows (single page), at most ``concurrency`` in flight."""
        results: list[list[tuple[Any, ...]]] = [[] for _ in statements]
        in_flight: deque[tuple[int, ResponseFuture]] = deque()

        def collect() -> None:
            index, future = in_flight.popleft()
            results[index] = list(future.result())

        for index, statement in enumerate(statements):
            in_flight.append((index, self._execute_async(statement)))
            if len(in_flight) >= concurrency:
                collect()
        while in_flight:
            collect()
        return results

    # -- keys ------------------------------------------------------------------------------

    def driver_key(self, canonical_key: Sequence[Any]) -> list[Any]:
        """A key's canonical values as the values the driver binds (BadKey if impossible)."""
        return [
            parse_key_part(key_text(value), str(column.cql_type))
            for value, column in zip(canonical_key, self.layout.key, strict=True)
        ]

    def partition_token(self, canonical_key: Sequence[Any]) -> int | None:
        """The Murmur3 token Cassandra gives this key; None when it cannot be a Cassandra key."""
        try:
            values = [
                parse_key_part(key_text(value), str(column.cql_type))
                for value, column in zip(canonical_key, self.layout.partition, strict=False)
            ]
            parts = [
                kind.serialize(value, self._protocol)
                for kind, value in zip(self._partition_types, values, strict=True)
            ]
        except (BadKey, TypeError, ValueError, struct.error, OverflowError):
            return None
        if len(parts) == 1:
            routing_key = parts[0]
        else:
            routing_key = b"".join(struct.pack(">H", len(p)) + p + b"\x00" for p in parts)
        return murmur3_token(routing_key)

    def token_function(
        self, display_key: Callable[[Sequence[Any]], Sequence[Any]]
    ) -> Callable[[Sequence[Any]], int | None]:
        """``partition_token`` over a key's *compare forms* (``display_key`` turns them into
        canonical values): ``records.fast_token_function`` for the common partition key
        types, the driver's serializers for the others."""
        slow = self.partition_token

        def slow_token(compare_forms: Sequence[Any]) -> int | None:
            return slow(display_key(compare_forms))

        fast = fast_token_function(self.layout, fallback=slow_token)
        return slow_token if fast is None else fast

    def lookup(self, canonical_keys: Sequence[Sequence[Any]]) -> list[tuple[Any, ...] | None]:
        """The current row ``(token, *columns)`` for each key (None when absent)."""
        statements: list[BoundStatement] = []
        positions: list[int] = []
        for index, key in enumerate(canonical_keys):
            try:
                statements.append(self._bind(self.lookup_statement, self.driver_key(key)))
            except (BadKey, TypeError, ValueError):
                continue  # not a valid Cassandra key: it cannot be there
            positions.append(index)
        found: list[tuple[Any, ...] | None] = [None] * len(canonical_keys)
        for index, rows in zip(positions, self._execute_all(statements), strict=True):
            found[index] = rows[0] if rows else None
        return found

    def sample_keys(self, count: int, rng: random.Random) -> list[tuple[Any, ...]]:
        """About ``count`` rows' keys at random ring positions (the first row after each)."""
        columns = ", ".join(cql_column(c.name) for c in self.layout.key)
        statement = self._prepare(
            f"SELECT {self.token_expr}, {columns} FROM {self.table} "
            f"WHERE {self.token_expr} > ? LIMIT 1"
        )
        starts = [rng.randint(MIN_TOKEN, MAX_TOKEN - 1) for _ in range(count)]
        rows = self._execute_all([self._bind(statement, [s]) for s in starts])
        if any(not r for r in rows):  # past the last partition: wrap around the ring
            first = self._execute_all([self._bind(statement, [MIN_TOKEN])])[0]
            rows = [r or first for r in rows]
        return [r[0][1:] for r in rows if r]

    def estimated_rows(self) -> int:
        """Cassandra's own estimate of the partition count (0 when it has none yet)."""
        spec = self.layout.spec
        try:
            rows = self.session.execute(
                "SELECT partitions_count FROM system.size_estimates "
                "WHERE keyspace_name = %s AND table_name = %s",
                (spec.cassandra_keyspace, spec.cassandra_table),
            )
        except Exception:  # an estimate only; the system table may be unreadable
            return 0
        total = 0
        for row in rows:
            total += int(row["partitions_count"] if isinstance(row, dict) else row[0])
        return total


def _put(pages: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    """Put ``item`` unless the consumer has gone away; False when it has."""
    while not stop.is_set():
        try:
            pages.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False
