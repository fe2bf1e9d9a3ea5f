"""Reading the source table: by token range, paged, in token order, with bounded memory.

The Murmur3 ring ``(-2**63, 2**63 - 1]`` is split into equal segments; each segment is one
paged ``SELECT token(pk), … WHERE token(pk) > ? AND token(pk) <= ?`` (prepared, at the
configured consistency).  A few segments are read concurrently by worker threads, each
handing over at most ``PAGES_AHEAD`` pages through a bounded queue, and the rows are
yielded segment after segment, so the caller sees the whole table in token order while
holding at most ``parallel × PAGES_AHEAD × page_size`` rows.

Each column is selected as its codec says (``cqlselect.select_column``: a timestamp as epoch
milliseconds, a uuid as its 16 bytes, no driver object per value); a scan by byte form
selects its own columns (``stream(selectors=…)``, ``rowhash.py``).

**Write times.**  With ``write_times``, each row also brings its write-time summary, computed
by Cassandra in the same read (``cqlselect.write_time_selectors``): the latest ``WRITETIME`` of its
regular cells, and their largest ``TTL`` (negative when a live cell has none): two small
integers per row, whatever the column count ( ``records.source_write`` turns them into the
row's write time and expiry).  Non-frozen collections and UDTs (many cells, no single
write time) and counters (no WRITETIME) are left out; a table with no other regular column
has no readable write time.  The summary uses Cassandra 5.0's ``collection_max`` /
``collection_sum``: on an older node the statement cannot be prepared and the table is read
without write times (``write_times`` is then False).

**Read-rate cap.**  With a ``limiter`` (``ReadLimiter``; ``reconciliation.ratelimit``'s
Redis buckets) every read takes its rows from the cap first: a scan's pages are at most
one bucketful and asked for before they are read (a range's first page as many rows as the
last range's first page held, settled once the page is in); lookups and samples a row per
statement, a bucketful of statements at a time; a count its rows once counted.  Without
one (the default) nothing of this runs.

``lookup`` reads rows back by key (the re-check, SAMPLE, the "re-check now" button): it
binds every Cassandra value that equals the key under the engine's key equality and may be
written differently (a decimal's scale, 0.0 and -0.0) and returns candidate rows; the
engine keeps those whose key compare forms equal the key's (``records.py``).
"""

from __future__ import annotations

import logging
import marshal
import queue
import random
import struct
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from cassandra import InvalidRequest
from cassandra.cluster import EXEC_PROFILE_DEFAULT, ResponseFuture, Session
from cassandra.query import BoundStatement, PreparedStatement, tuple_factory

from reconciliation.engine.cqlselect import driver_keys, select_column, write_time_selectors
from reconciliation.engine.identifiers import cql_column, cql_table
from reconciliation.engine.records import MARSHAL_VERSION, MAX_TOKEN, MIN_TOKEN
from reconciliation.engine.schema import Layout, Window

logger = logging.getLogger(__name__)

PAGES_AHEAD = 2
_END = object()


class ReadLimiter(Protocol):
    """A cap on the rows per second read from Cassandra (``reconciliation.ratelimit``).

    ``acquire(rows)`` blocks until ``rows`` may be read; ``refund(rows)`` gives back rows
    asked for but not read; ``on_transient(error)`` hears of each transient read error (the
    cap backs off on a timeout or an overload).  A page holds at most ``max_page_rows``."""

    @property
    def max_page_rows(self) -> int: ...

    def acquire(self, rows: int) -> None: ...

    def refund(self, rows: int) -> None: ...

    def on_transient(self, error: BaseException) -> None: ...


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
        write_times: bool = False,
        limiter: ReadLimiter | None = None,
    ) -> None:
        self.session = session
        self.layout = layout
        self.consistency = consistency
        # Under a read-rate cap a page is at most one bucketful (the cap's burst), so the
        # rows asked for before a page are never much more than the cap allows at once.
        self.limiter = limiter
        if limiter is not None:
            page_size = max(1, min(page_size, limiter.max_page_rows))
        self.page_size = page_size
        self.parallel = parallel
        # Rows read from Cassandra so far (scans and lookups; the job's read rate).
        self.rows_read = 0
        # Under a cap: how many rows a range's first page is asked for (the last one's).
        self._first_page_rows = self.page_size
        self._rows_lock = threading.Lock()
        self.profile = session.execution_profile_clone_update(
            EXEC_PROFILE_DEFAULT, row_factory=tuple_factory, consistency_level=consistency
        )
        spec = layout.spec
        self.table = cql_table(spec.cassandra_keyspace, spec.cassandra_table)
        self.token_expr = f"token({', '.join(cql_column(n) for n in spec.partition_key)})"
        self.selected = ", ".join(select_column(c) for c in layout.columns)
        self._prepared: dict[str, PreparedStatement] = {}
        key_predicate = " AND ".join(f"{cql_column(c.name)} = ?" for c in layout.key)

        def lookup(selected: str) -> str:
            return f"SELECT {self.token_expr}, {selected} FROM {self.table} WHERE {key_predicate}"

        writes = write_time_selectors(layout.values) if write_times else []
        self.write_times = False
        if writes:
            with_writes = ", ".join([self.selected, *writes])
            try:
                self.lookup_statement = self._prepare(lookup(with_writes))
                self.selected, self.write_times = with_writes, True
            except InvalidRequest:  # a node older than 5.0: no collection_max
                logger.warning(
                    "Cassandra cannot compute write times of %s (needs Cassandra 5.0): "
                    "the table is compared without them",
                    self.table,
                )
        if not self.write_times:
            self.lookup_statement = self._prepare(lookup(self.selected))

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
        selectors: Sequence[str] | None = None,
    ) -> Generator[list[tuple[Any, ...]], None, None]:
        """Pages of rows ``(token, *compared columns[, *write-time summary])`` over
        ``segments``, in token order; ``selectors``: rows ``(token, *selectors)`` instead (a
        scan by byte form, ``rowhash.cassandra_selectors``: write times are read with the
        few keys that differ, not for every row)."""
        selected = self.selected if selectors is None else ", ".join(selectors)
        statement = self._range_query(f"{self.token_expr}, {selected}", window)
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

        limiter = self.limiter

        def fill(statement: BoundStatement, pages: queue.Queue[Any]) -> None:
            try:
                # Under a cap each page's rows are asked for before it is read (a full page,
                # or for a range's first page as many as the last range's first page held)
                # and the difference is settled once it is in (``_settle``).
                fetch = statement.fetch_size or self.page_size
                asked = min(fetch, self._first_page_rows) if limiter is not None else 0
                if limiter is not None:
                    limiter.acquire(asked)
                result = self.session.execute(statement, execution_profile=self.profile)
                first = True
                while True:
                    rows = result.current_rows
                    if limiter is not None:
                        _settle(limiter, asked, len(rows))
                        if first:
                            self._first_page_rows = max(1, len(rows))
                    first = False
                    if not _put(pages, rows, stop):
                        return
                    if not result.has_more_pages:
                        break
                    if limiter is not None:
                        asked = fetch
                        limiter.acquire(asked)
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
                        self.rows_read += len(page)
                        yield page
            finally:
                stop.set()

    def count(self, segments: Sequence[tuple[int, int]]) -> int:
        """The row count, one ``count(*)`` per token segment (never a whole-table count)."""
        statement = self._range_query("count(*)", None)
        statements = [self._bind(statement, s) for s in segments]
        if self.limiter is None:
            return sum(int(rows[0][0]) for rows in self._execute_all(statements))
        # A count reads its range's rows on the node, how many is known only after: each
        # range's count is taken from the cap once it is known, one range at a time.
        total = 0
        for bound in statements:
            counted = int(self._execute_all([bound])[0][0][0])
            self.limiter.acquire(counted)
            total += counted
        return total

    def _execute_all(
        self, statements: Sequence[BoundStatement], concurrency: int = 32
    ) -> list[list[tuple[Any, ...]]]:
        """Every statement's rows (single page), at most ``concurrency`` in flight."""
        results: list[list[tuple[Any, ...]]] = [[] for _ in statements]
        in_flight: deque[tuple[int, ResponseFuture]] = deque()

        limiter = self.limiter
        # Under a cap, a statement (a lookup, a sample, a count) is taken as one row, asked
        # for a bucketful of statements at a time; extra rows it found are taken after.
        batch = 1 if limiter is None else limiter.max_page_rows

        def collect() -> None:
            index, future = in_flight.popleft()
            results[index] = list(future.result())
            found = len(results[index])
            if limiter is not None and found > 1:
                limiter.acquire(found - 1)
            with self._rows_lock:
                self.rows_read += found

        for index, statement in enumerate(statements):
            if limiter is not None and index % batch == 0:
                limiter.acquire(min(batch, len(statements) - index))
            in_flight.append((index, self._execute_async(statement)))
            if len(in_flight) >= concurrency:
                collect()
        while in_flight:
            collect()
        return results

    # -- keys ------------------------------------------------------------------------------

    def lookup(
        self, keys: Sequence[Sequence[Any]], key_of: Callable[[tuple[Any, ...]], bytes]
    ) -> list[tuple[Any, ...] | None]:
        """The current row ``(token, *columns)`` for each key, given as compare forms (None
        when absent): candidates read by every equal binding, kept when ``key_of(row)`` is
        the key's bytes (the engine's key equality)."""
        return [rows[0] if rows else None for rows in self.lookup_all(keys, key_of)]

    def lookup_statement_of(self, selectors: Sequence[str]) -> PreparedStatement:
        """A lookup by key that selects ``(token, *selectors)``."""
        where = " AND ".join(f"{cql_column(c.name)} = ?" for c in self.layout.key)
        return self._prepare(
            f"SELECT {self.token_expr}, {', '.join(selectors)} FROM {self.table} WHERE {where}"
        )

    def lookup_all(
        self,
        keys: Sequence[Sequence[Any]],
        key_of: Callable[[tuple[Any, ...]], bytes],
        statement: PreparedStatement | None = None,
    ) -> list[list[tuple[Any, ...]]]:
        """``lookup``, with every row equal to each key (Cassandra may hold 1.1 and 1.10 as
        two keys that the key equality calls one); ``statement``: another lookup's
        (``lookup_statement_of``)."""
        statement = statement or self.lookup_statement
        statements: list[BoundStatement] = []
        positions: list[int] = []
        for index, key in enumerate(keys):
            for values in driver_keys(self.layout, key):
                try:
                    statements.append(self._bind(statement, values))
                except (TypeError, ValueError, struct.error, OverflowError):
                    continue  # not a valid Cassandra key: it cannot be there
                positions.append(index)
        wanted = [marshal.dumps(tuple(k), MARSHAL_VERSION) for k in keys]
        found: list[list[tuple[Any, ...]]] = [[] for _ in keys]
        for index, rows in zip(positions, self._execute_all(statements), strict=True):
            for row in rows:
                if key_of(row) == wanted[index] and row not in found[index]:
                    found[index].append(row)
        return found

    def sample_keys(self, count: int, rng: random.Random) -> list[tuple[Any, ...]]:
        """About ``count`` rows' keys at random ring positions (the first row after each)."""
        columns = ", ".join(select_column(c) for c in self.layout.key)
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


def _settle(limiter: ReadLimiter, asked: int, received: int) -> None:
    """A page held ``received`` rows, ``asked`` were taken for it: take or give back the rest."""
    if received > asked:
        limiter.acquire(received - asked)
    elif received < asked:
        limiter.refund(asked - received)


def _put(pages: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    """Put ``item`` unless the consumer has gone away; False when it has."""
    while not stop.is_set():
        try:
            pages.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False
