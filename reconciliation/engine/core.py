"""The engine's core: one reconciliation of one table, its stores, layout and codec.

``Engine`` holds what every strategy shares: the two tables (``cassandra.CassandraTable``,
``postgres.PostgresTable``), the codec that turns either store's rows into comparable
records (``records.py``), the lookups that read keys back from both stores by the one key
equality, and the verdict step (``judge``, from ``judging.py``).  Its rule (``recheck_rule``):

* ``WRITE_TIME`` (the source's write times are read and the table has a CDC lag budget):
  each difference is judged by its source row's write time (``lag.lag_verdict``): in flight
  (reported with ``recheck_after``, not counted as drift), expired (not a difference), drift
  at once, or read again now; MISSING_IN_CASSANDRA and rows without a write time take the
  fixed delay below;
* ``FIXED_DELAY``: every difference is read again after ``recheck_delay_seconds`` and
  reported only if it still differs;
* ``NONE``: no delay set; the differences are reported as the pass found them.

The strategies live in their own modules (``row_count``, ``checksum``,
``timestamp_range``, ``sample``; the key-by-key diff they share in ``keydiff``).  Each joins
``RUNNERS`` with ``@strategy(NAME)`` when the ``engine`` package imports it; ``Engine.run``
picks one from there, so this module never imports a strategy (no import cycle).  What a run
is told and gives back (``Options``, ``Difference``, ``Outcome``) is in ``terms``.
"""

from __future__ import annotations

import datetime as dt
import marshal
import time
from collections.abc import Callable, Sequence
from typing import Any

from cassandra.cluster import Session

from reconciliation.engine.canonical import Converter, column_canonicalizer
from reconciliation.engine.cassandra import CassandraTable
from reconciliation.engine.judging import VERDICT_BATCH, Judging, _kind
from reconciliation.engine.keys import BadKey, split_key
from reconciliation.engine.merge import agree
from reconciliation.engine.postgres import PostgresTable
from reconciliation.engine.readable import primary_key_text
from reconciliation.engine.records import MARSHAL_VERSION, Codec, SourceWrite, source_write
from reconciliation.engine.ring import token_segments
from reconciliation.engine.rowhash import Scan
from reconciliation.engine.schema import TableSpec, discover_layout
from reconciliation.engine.terms import (
    Connect,
    Difference,
    KeyReading,
    Options,
    Outcome,
    Progress,
    Report,
)
from reconciliation.engine.unreadable import count_unreadable, is_unreadable
from reconciliation.vocabulary import (
    FIXED_DELAY,
    NO_RECHECK,
    WRITE_TIME,
)

Runner = Callable[["Engine"], "Outcome"]

#: The validation strategies' runners, by name: each strategy module joins with ``strategy``.
RUNNERS: dict[str, Runner] = {}


def strategy(name: str) -> Callable[[Runner], Runner]:
    """Register a strategy's runner under ``name`` (a decorator)."""

    def register(runner: Runner) -> Runner:
        RUNNERS[name] = runner
        return runner

    return register


def _no_progress(fraction: float) -> None:
    return None


# -- records ----------------------------------------------------------------------------------


def plan_segments(options: Options, estimate: int) -> list[tuple[int, int]]:
    """Token segments for a table of about ``estimate`` rows: ``rows_per_segment`` each, and
    at least four per reader thread."""
    count = max(options.parallel * 4, estimate // options.rows_per_segment)
    return token_segments(min(count, 16384))


class Engine(Judging):
    """One reconciliation of one table: the stores, the layout and the codec."""

    def __init__(
        self,
        spec: TableSpec,
        session: Session,
        connect: Connect,
        options: Options,
        report: Report,
        progress: Progress = _no_progress,
    ) -> None:
        self.spec = spec
        self.options = options
        self.report = report
        self.progress = progress
        with connect() as conn:
            self.layout = discover_layout(session, conn, spec)
        self.cassandra = CassandraTable(
            session,
            self.layout,
            options.consistency,
            page_size=options.page_size,
            parallel=options.parallel,
            write_times=options.write_times,
            limiter=options.source_limiter,
        )
        self.postgres = PostgresTable(connect, self.layout)
        self.codec = Codec(self.layout, source_writes=self.cassandra.write_times)
        self.scan = Scan(
            self.layout, self.codec, self.cassandra, self.postgres, enabled=options.byte_forms
        )
        self.unreadable_values = 0  # in the rows reported
        self.reads_began_at = options.reads_began_at or time.time()

    @property
    def recheck_rule(self) -> str:
        """How this run tells drift from differences in flight (module docstring)."""
        if self.cassandra.write_times and self.options.lag_budget_seconds > 0:
            return WRITE_TIME
        if self.options.recheck_delay_seconds > 0:
            return FIXED_DELAY
        return NO_RECHECK

    @property
    def rereads_everything(self) -> bool:
        """Does ``judge`` read every difference again (so the pass's rows need not be
        kept)?  Only under the fixed delay."""
        return self.recheck_rule == FIXED_DELAY

    # -- lookups ------------------------------------------------------------------------------

    def read_both(
        self, keys: Sequence[bytes], *, cassandra: bool = True, postgres: bool = True
    ) -> tuple[list[bytes | None], list[tuple[bytes, ...]], list[SourceWrite | None]]:
        """The current rows of each key (key bytes) on both sides, as row bytes: the rows
        whose key is equal to it under the engine's key equality (``records.py``); and each
        source row's write (``records.source_write``; None without one)."""
        forms = [list(marshal.loads(k)) for k in keys]
        c_rows: list[bytes | None] = [None] * len(keys)
        p_rows: list[tuple[bytes, ...]] = [()] * len(keys)
        writes: list[SourceWrite | None] = [None] * len(keys)
        codec = self.codec
        if cassandra:
            c_key = lambda row: codec.cassandra_record(row)[1]  # noqa: E731
            now = time.time()
            for i, row in enumerate(self.cassandra.lookup(forms, c_key)):
                if row is not None:
                    record = codec.cassandra_record(row)
                    c_rows[i] = record[2]
                    writes[i] = source_write(record[3], now)
        if postgres:
            p_key = lambda row: codec.postgres_record(row)[1]  # noqa: E731
            for i, rows in enumerate(self.postgres.lookup(forms, p_key)):
                p_rows[i] = tuple(codec.postgres_record(r)[2] for r in rows)
        return c_rows, p_rows, writes

    def compare_keys(self, keys: Sequence[bytes]) -> list[Difference | None]:
        """Read ``keys`` back from both stores now and compare: each key's Difference, or
        None where the two sides agree."""
        return [reading.difference for reading in self.read_keys(keys)]

    def read_keys(self, keys: Sequence[bytes]) -> list[KeyReading]:
        """``compare_keys``, with every row found for each key, readable (both sides)."""
        readings: list[KeyReading] = []
        display = self.codec.display
        for start in range(0, len(keys), VERDICT_BATCH):
            batch = keys[start : start + VERDICT_BATCH]
            c_rows, p_rows, writes = self.read_both(batch)
            for key, c_row, rows, written in zip(batch, c_rows, p_rows, writes, strict=True):
                shown = ([] if c_row is None else [display(key, c_row)]) + [
                    display(key, row) for row in rows
                ]
                difference = (
                    None if agree(c_row, rows) else self._difference(key, c_row, rows, written)
                )
                readings.append(KeyReading(difference, shown))
        return readings

    def key_bytes_of(self, primary_key_value: str) -> bytes:
        """The key bytes of a ``primary_key_value`` text (BadKey when it does not fit)."""
        parts = split_key(primary_key_value, len(self.layout.key))
        forms = []
        for part, column in zip(parts, self.layout.key, strict=True):
            form = column_canonicalizer(column.cql_type)(part)
            if form is None or is_unreadable(form):
                raise BadKey(f"{part!r} is not a valid {column.cql_type} value.")
            forms.append(form)
        return self.codec.key_bytes(forms)

    def _emit(
        self,
        key: bytes,
        c_row: bytes | None,
        p_rows: tuple[bytes, ...],
        written: SourceWrite | None,
        recheck_after: float | None = None,
    ) -> None:
        difference = self._difference(key, c_row, p_rows, written, recheck_after)
        self.unreadable_values += sum(
            count_unreadable(data)
            for data in (difference.cassandra_data, difference.postgres_data)
            if data is not None
        )
        self.report(difference)

    def _difference(
        self,
        key: bytes,
        c_row: bytes | None,
        p_rows: tuple[bytes, ...],
        written: SourceWrite | None = None,
        recheck_after: float | None = None,
    ) -> Difference:
        codec = self.codec
        kind = _kind(c_row, p_rows)
        p_row = next((r for r in p_rows if r != c_row), p_rows[0]) if p_rows else None
        if c_row is None:
            written = None
        expires = None if written is None else written[1]
        return Difference(
            primary_key_value=primary_key_text(codec.key_values(key)),
            mismatch_type=kind,
            cassandra_checksum=None if c_row is None else codec.checksum(key, c_row),
            postgres_checksum=None if p_row is None else codec.checksum(key, p_row),
            cassandra_data=None if c_row is None else codec.display(key, c_row),
            postgres_data=None if p_row is None else codec.display(key, p_row),
            source_write_time=None if written is None else written[0],
            source_ttl=None if expires is None else max(0, round(expires - time.time())),
            recheck_after=recheck_after,
        )

    # -- shared by the strategies -------------------------------------------------------------

    def estimate(self) -> int:
        return max(self.cassandra.estimated_rows(), self.postgres.estimated_rows())

    def key_of_row(self, key_row: Sequence[Any], converters: list[tuple[int, Converter]]) -> bytes:
        size = self.codec.key_size
        values = list(key_row[:size])
        for index, convert in converters:
            if index < size and values[index] is not None:
                values[index] = convert(values[index])
        return marshal.dumps(tuple(values), MARSHAL_VERSION)

    def run(self, name: str) -> Outcome:
        runner = RUNNERS.get(name)
        if runner is None:
            raise ValueError(f"Unknown validation strategy {name!r}.")
        outcome = runner(self)
        outcome.schema_warnings = list(self.layout.warnings)
        outcome.unreadable_value_count = self.unreadable_values
        self.progress(1.0)
        return outcome


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
