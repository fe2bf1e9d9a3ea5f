"""The engine's core: one reconciliation of one table, its stores, layout and codec.

``Engine`` holds what every strategy shares: the two tables (``cassandra.CassandraTable``,
``postgres.PostgresTable``), the codec that turns either store's rows into comparable
records (``records.py``), the lookups that read keys back from both stores by the one key
equality, and the verdict step (``judge``).  Its rule (``recheck_rule``):

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
from dataclasses import dataclass
from typing import Any

from cassandra.cluster import Session

from reconciliation.engine.canonical import Converter, column_canonicalizer
from reconciliation.engine.cassandra import CassandraTable, token_segments
from reconciliation.engine.keys import BadKey, split_key
from reconciliation.engine.lag import EXPIRED, READ_AGAIN, LagVerdict, lag_verdict
from reconciliation.engine.merge import Diff, agree
from reconciliation.engine.postgres import PostgresTable
from reconciliation.engine.readable import primary_key_text
from reconciliation.engine.records import MARSHAL_VERSION, Codec, SourceWrite, source_write
from reconciliation.engine.schema import TableSpec, discover_layout
from reconciliation.engine.spill import Spool
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
    DATA_MISMATCH,
    FIXED_DELAY,
    IN_FLIGHT,
    MISSING_IN_CASSANDRA,
    MISSING_IN_POSTGRES,
    NO_RECHECK,
    WRITE_TIME,
)

VERDICT_BATCH = 500

#: The progress fraction at which a run's reading ends and its transient re-check begins.
RECHECK_PROGRESS = 0.9

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
    in_flight: int = 0
    expired: int = 0


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
            write_times=options.write_times,
            limiter=options.source_limiter,
        )
        self.postgres = PostgresTable(connect, self.layout)
        self.codec = Codec(self.layout, source_writes=self.cassandra.write_times)
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

    def judge(
        self,
        differences: Spool,
        *,
        resolve_one_sided: bool = False,
        start: float = RECHECK_PROGRESS,
    ) -> Verdicts:
        """Decide every spooled difference by the run's rule (``recheck_rule``) and report
        the ones that still differ (in flight ones with their ``recheck_after``)."""
        verdicts = Verdicts()
        if not differences.count:
            return verdicts
        self.progress(start)
        if self.recheck_rule == WRITE_TIME:
            return self._judge_by_write_time(differences, verdicts, resolve_one_sided, start)
        delay = self.options.recheck_delay_seconds
        if delay > 0:
            time.sleep(delay)
        done = 0
        for batch in differences.batches(VERDICT_BATCH):
            keys = [d[0] for d in batch]
            if delay > 0:
                c_rows, p_rows, writes = self.read_both(keys)
                now_read = zip(keys, c_rows, p_rows, writes, strict=True)
                for key, c_row, p_rows_now, written in now_read:
                    if agree(c_row, p_rows_now):
                        verdicts.transient += 1
                    else:
                        verdicts.mismatches += 1
                        self._emit(key, c_row, p_rows_now, written)
            else:
                if resolve_one_sided:
                    batch = self._resolve_one_sided(batch)
                for key, c_row, p_rows_then, written in batch:
                    if agree(c_row, p_rows_then):
                        verdicts.agreed += 1
                    else:
                        verdicts.mismatches += 1
                        self._emit(key, c_row, p_rows_then, written)
            done += len(batch)
            self.progress(start + (1 - start) * done / differences.count)
        return verdicts

    def _judge_by_write_time(
        self, differences: Spool, verdicts: Verdicts, resolve_one_sided: bool, start: float
    ) -> Verdicts:
        """WRITE_TIME: each difference by its source row's write time (``lag_verdict``);
        those without one wait for the fixed delay, then are read again once."""
        delay = self.options.recheck_delay_seconds
        done = 0
        with Spool() as later:
            for batch in differences.batches(VERDICT_BATCH):
                if resolve_one_sided:
                    batch = self._resolve_one_sided(batch)
                again: list[bytes] = []
                for key, c_row, p_rows, written in batch:
                    if agree(c_row, p_rows):
                        verdicts.agreed += 1
                        continue
                    verdict = self._lag_verdict(c_row, p_rows, written, self.reads_began_at)
                    if verdict.kind == READ_AGAIN:
                        again.append(key)
                    elif verdict.kind == FIXED_DELAY and delay > 0:
                        later.add(key)
                    else:
                        self._decide(verdicts, verdict, key, c_row, p_rows, written)
                self._read_again(again, verdicts)
                done += len(batch)
                self.progress(start + (1 - start) * 0.9 * done / differences.count)
            if later.count:
                time.sleep(delay)
                for keys in later.batches(VERDICT_BATCH):
                    self._read_again(keys, verdicts)
        return verdicts

    def _lag_verdict(
        self,
        c_row: bytes | None,
        p_rows: tuple[bytes, ...],
        written: SourceWrite | None,
        reads_began_at: float,
    ) -> LagVerdict:
        return lag_verdict(
            _kind(c_row, p_rows),
            written if c_row is not None else None,
            now=time.time(),
            budget=self.options.lag_budget_seconds,
            reads_began_at=reads_began_at,
        )

    def _read_again(self, keys: list[bytes], verdicts: Verdicts) -> None:
        """Read ``keys`` now and decide them on what is there now: agreeing, they were
        transient; a difference without a write time is drift (it had its delay)."""
        if not keys:
            return
        c_rows, p_rows, writes = self.read_both(keys)
        for key, c_row, rows, written in zip(keys, c_rows, p_rows, writes, strict=True):
            if agree(c_row, rows):
                verdicts.transient += 1
                continue
            verdict = self._lag_verdict(c_row, rows, written, time.time())
            self._decide(verdicts, verdict, key, c_row, rows, written)

    def _decide(
        self,
        verdicts: Verdicts,
        verdict: LagVerdict,
        key: bytes,
        c_row: bytes | None,
        p_rows: tuple[bytes, ...],
        written: SourceWrite | None,
    ) -> None:
        if verdict.kind == EXPIRED:
            verdicts.expired += 1
        elif verdict.kind == IN_FLIGHT:
            verdicts.in_flight += 1
            self._emit(key, c_row, p_rows, written, verdict.recheck_after)
        else:  # DRIFT, or a fixed-delay kind judged now
            verdicts.mismatches += 1
            self._emit(key, c_row, p_rows, written)

    def _resolve_one_sided(self, batch: list[Diff]) -> list[Diff]:
        """Read the other side of keys seen on one side only (TIMESTAMP_RANGE: the row may
        be there with a timestamp outside the window)."""
        need_c = [d[0] for d in batch if d[1] is None]
        need_p = [d[0] for d in batch if not d[2]]
        c_found, _, w_found = self.read_both(need_c, postgres=False)
        found_c = dict(zip(need_c, zip(c_found, w_found, strict=True), strict=True))
        found_p = dict(zip(need_p, self.read_both(need_p, cassandra=False)[1], strict=True))
        resolved: list[Diff] = []
        for key, c_row, p_rows, written in batch:
            if c_row is None:
                c_row, written = found_c.get(key, (None, None))
            resolved.append((key, c_row, p_rows or found_p.get(key, ()), written))
        return resolved

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


def _kind(c_row: bytes | None, p_rows: tuple[bytes, ...]) -> str:
    if c_row is None:
        return MISSING_IN_CASSANDRA
    if not p_rows:
        return MISSING_IN_POSTGRES
    return DATA_MISMATCH


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
