"""The engine's core: one reconciliation of one table, its stores, layout and codec.

``Engine`` holds what every strategy shares: the two tables (``cassandra.CassandraTable``,
``postgres.PostgresTable``), the codec that turns either store's rows into comparable
records (``records.py``), the lookups that read keys back from both stores by the one key
equality, and the verdict step (``judge``): each key a pass found different is re-checked
(after ``recheck_delay_seconds``) and reported only if it still differs.

The strategies live in their own modules (``row_count``, ``checksum``,
``timestamp_range``, ``sample``; the key-by-key diff they share in ``keydiff``).  Each joins
``RUNNERS`` with ``@strategy(NAME)`` when the ``engine`` package imports it; ``Engine.run``
picks one from there, so this module never imports a strategy (no import cycle).
"""

from __future__ import annotations

import datetime as dt
import marshal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from cassandra.cluster import Session

from reconciliation.engine.canonical import (
    Converter,
    column_canonicalizer,
    count_unreadable,
    is_unreadable,
)
from reconciliation.engine.cassandra import CassandraTable, token_segments
from reconciliation.engine.keys import BadKey, split_key
from reconciliation.engine.merge import Diff, agree
from reconciliation.engine.postgres import PostgresTable
from reconciliation.engine.readable import primary_key_text
from reconciliation.engine.records import MARSHAL_VERSION, Codec
from reconciliation.engine.schema import TableSpec, discover_layout
from reconciliation.engine.spill import Spool

ROW_COUNT = "ROW_COUNT"
CHECKSUM = "CHECKSUM"
TIMESTAMP_RANGE = "TIMESTAMP_RANGE"
SAMPLE = "SAMPLE"
STRATEGIES = (ROW_COUNT, CHECKSUM, TIMESTAMP_RANGE, SAMPLE)

MISSING_IN_POSTGRES = "MISSING_IN_POSTGRES"
MISSING_IN_CASSANDRA = "MISSING_IN_CASSANDRA"
DATA_MISMATCH = "DATA_MISMATCH"

VERDICT_BATCH = 500

Connect = Callable[[], psycopg.Connection]


@dataclass(frozen=True)
class Options:
    """How to run: consistency, re-check delay, window, sample size, and scan tuning."""

    consistency: int
    recheck_delay_seconds: float = 0.0
    sample_size: int = 1000
    window_from: dt.datetime | None = None
    window_to: dt.datetime | None = None
    interval_minutes: int = 60
    window_overlap_minutes: int = 5
    parallel: int = 4
    page_size: int = 5000
    rows_per_segment: int = 50_000
    run_size: int = 100_000
    seed: int | None = None


@dataclass(frozen=True)
class Difference:
    """One row that differs, as the job stores it (a ``Mismatch``)."""

    primary_key_value: str
    mismatch_type: str
    cassandra_checksum: str | None
    postgres_checksum: str | None
    cassandra_data: dict[str, Any] | None
    postgres_data: dict[str, Any] | None
    # The source row's write time (microseconds since the epoch: the latest WRITETIME of its
    # regular, non-collection columns) and remaining TTL (seconds), when the row is in
    # Cassandra and they can be read.
    source_write_time: int | None = None
    source_ttl: int | None = None


@dataclass
class KeyReading:
    """One key read now from both stores: its Difference (None when the sides agree) and
    every row found for it, readable (Cassandra's first)."""

    difference: Difference | None
    rows: list[dict[str, Any]]


@dataclass
class Outcome:
    """What a strategy found (the job's counters)."""

    cassandra_row_count: int | None = None
    postgres_row_count: int | None = None
    keys_examined: int = 0
    mismatch_count: int = 0
    transient_count: int = 0
    drift_percentage: float = 0.0
    drift_ci_low: float | None = None
    drift_ci_high: float | None = None
    # Values either side could not read as the column's type (each in a reported row).
    unreadable_value_count: int = 0
    schema_warnings: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    # The keys a random SAMPLE drew (``primary_key_value`` texts, at most the sample size):
    # what it covered.  None when the run covered its whole scope (CHECKSUM, a SAMPLE of a
    # table no larger than the sample, a TIMESTAMP_RANGE window) or no key (ROW_COUNT).
    examined_keys: list[str] | None = None


#: The progress fraction at which a run's reading ends and its transient re-check begins.
RECHECK_PROGRESS = 0.9

Report = Callable[[Difference], None]
Progress = Callable[[float], None]
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


# -- verdicts -----------------------------------------------------------------------------------


@dataclass
class Verdicts:
    mismatches: int = 0
    transient: int = 0
    agreed: int = 0


class Engine:
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
        )
        self.postgres = PostgresTable(connect, self.layout)
        self.codec = Codec(self.layout)
        self.unreadable_values = 0  # in the rows reported

    # -- lookups ------------------------------------------------------------------------------

    def read_both(
        self, keys: Sequence[bytes], *, cassandra: bool = True, postgres: bool = True
    ) -> tuple[list[bytes | None], list[tuple[bytes, ...]]]:
        """The current rows of each key (key bytes) on both sides, as row bytes: the rows
        whose key is equal to it under the engine's key equality (``records.py``)."""
        forms = [list(marshal.loads(k)) for k in keys]
        c_rows: list[bytes | None] = [None] * len(keys)
        p_rows: list[tuple[bytes, ...]] = [()] * len(keys)
        codec = self.codec
        if cassandra:
            c_key = lambda row: codec.cassandra_record(row)[1]  # noqa: E731
            for i, row in enumerate(self.cassandra.lookup(forms, c_key)):
                if row is not None:
                    c_rows[i] = codec.cassandra_record(row)[2]
        if postgres:
            p_key = lambda row: codec.postgres_record(row)[1]  # noqa: E731
            for i, rows in enumerate(self.postgres.lookup(forms, p_key)):
                p_rows[i] = tuple(codec.postgres_record(r)[2] for r in rows)
        return c_rows, p_rows

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
            c_rows, p_rows = self.read_both(batch)
            for key, c_row, rows in zip(batch, c_rows, p_rows, strict=True):
                shown = ([] if c_row is None else [display(key, c_row)]) + [
                    display(key, row) for row in rows
                ]
                difference = None if agree(c_row, rows) else self._difference(key, c_row, rows)
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

    def _emit(self, key: bytes, c_row: bytes | None, p_rows: tuple[bytes, ...]) -> None:
        difference = self._difference(key, c_row, p_rows)
        self.unreadable_values += sum(
            count_unreadable(data)
            for data in (difference.cassandra_data, difference.postgres_data)
            if data is not None
        )
        self.report(difference)

    def _difference(self, key: bytes, c_row: bytes | None, p_rows: tuple[bytes, ...]) -> Difference:
        codec = self.codec
        if c_row is None:
            kind = MISSING_IN_CASSANDRA
        elif not p_rows:
            kind = MISSING_IN_POSTGRES
        else:
            kind = DATA_MISMATCH
        p_row = next((r for r in p_rows if r != c_row), p_rows[0]) if p_rows else None
        return Difference(
            primary_key_value=primary_key_text(codec.key_values(key)),
            mismatch_type=kind,
            cassandra_checksum=None if c_row is None else codec.checksum(key, c_row),
            postgres_checksum=None if p_row is None else codec.checksum(key, p_row),
            cassandra_data=None if c_row is None else codec.display(key, c_row),
            postgres_data=None if p_row is None else codec.display(key, p_row),
        )

    def judge(
        self,
        differences: Spool,
        *,
        resolve_one_sided: bool = False,
        start: float = RECHECK_PROGRESS,
    ) -> Verdicts:
        """Decide every spooled difference: re-check it (after the grace delay) and report
        the ones that still differ."""
        verdicts = Verdicts()
        if not differences.count:
            return verdicts
        delay = self.options.recheck_delay_seconds
        self.progress(start)
        if delay > 0:
            time.sleep(delay)
        done = 0
        for batch in differences.batches(VERDICT_BATCH):
            keys = [d[0] for d in batch]
            if delay > 0:
                c_rows, p_rows = self.read_both(keys)
                for key, c_row, p_rows_now in zip(keys, c_rows, p_rows, strict=True):
                    if agree(c_row, p_rows_now):
                        verdicts.transient += 1
                    else:
                        verdicts.mismatches += 1
                        self._emit(key, c_row, p_rows_now)
            else:
                if resolve_one_sided:
                    batch = self._resolve_one_sided(batch)
                for key, c_row, p_rows_then in batch:
                    if agree(c_row, p_rows_then):
                        verdicts.agreed += 1
                    else:
                        verdicts.mismatches += 1
                        self._emit(key, c_row, p_rows_then)
            done += len(batch)
            self.progress(start + (1 - start) * done / differences.count)
        return verdicts

    def _resolve_one_sided(self, batch: list[Diff]) -> list[Diff]:
        """Read the other side of keys seen on one side only (TIMESTAMP_RANGE: the row may
        be there with a timestamp outside the window)."""
        need_c = [d[0] for d in batch if d[1] is None]
        need_p = [d[0] for d in batch if not d[2]]
        found_c = dict(zip(need_c, self.read_both(need_c, postgres=False)[0], strict=True))
        found_p = dict(zip(need_p, self.read_both(need_p, cassandra=False)[1], strict=True))
        return [
            (
                key,
                found_c.get(key, c_row) if c_row is None else c_row,
                p_rows or found_p.get(key, ()),
            )
            for key, c_row, p_rows in batch
        ]

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
