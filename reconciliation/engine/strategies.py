"""The four validation strategies, and the key-by-key diff that three of them share.

Key-by-key diff with bounded memory (CHECKSUM, TIMESTAMP_RANGE, and SAMPLE on small tables)
------------------------------------------------------------------------------------------
PostgreSQL cannot order rows by Cassandra's Murmur3 token, and Cassandra cannot order rows by
key, so the engine brings both sides into **token order** and merges them:

1. *Target*: one REPEATABLE READ snapshot streamed with binary COPY.  Each row becomes a
   record ``(token, key bytes, row bytes)`` (``records.py``: the compare forms of
   ``canonical.py``, marshalled), its partition key hashed to its Murmur3 token in Python
   exactly as Cassandra would, and goes to an external sort (``spill.SortedRuns``: sorted
   runs of 100k records on disk).  When the partition key has a column whose token the
   target's value cannot reproduce (a decimal's scale, ...), both sides are ordered by a
   hash of their key bytes instead, and the source is externally sorted too
   (``records.py``, "key-hash pairing").
2. *Source*: the ring is split into token segments read concurrently but handed over in
   order (``cassandra.CassandraTable.stream``), so rows arrive in token order with
   ``token(pk)`` computed by Cassandra; each becomes the same kind of record.
3. *Merge*: the two token-ordered streams are walked together (``merge.merge_by_token``), a
   token at a time (one row, one partition, or a rare token collision).  Within a token
   rows pair up by key bytes (a partition wider than ``merge.GROUP_IN_MEMORY`` rows through
   an on-disk sort by key, so memory does not grow with the partition): a key on one side only is MISSING_IN_POSTGRES /
   MISSING_IN_CASSANDRA; a pair whose bytes differ is a DATA_MISMATCH.  Differences go to a
   disk spool.

   For a large table, 1 and 3 run in a child process (``target_worker.py``) on another
   core, so that they overlap 2: the child sorts the target while this process scans
   Cassandra into a record log on disk, then merges the log as it grows.  (With
   ``merge_in_child=False`` the child only sorts the target and this process merges; the
   source's first records wait in a spool until the target is sorted.)  Small tables are
   done in-process, one step after the other.
4. *Verdict*: after the pass (and after ``recheck_delay_seconds``, when not 0) each
   differing key is read again from both sides, in batches of 500, by the same key equality
   (``_read_both``: candidates by an index-friendly predicate, kept when their key bytes are
   equal); keys that now agree are
   transient, the rest are reported with SHA-256 checksums and readable data.

Memory is bounded by constants (a sort run, one block per run while merging, a few
Cassandra pages in flight, one token group, one verdict batch), not by the table: what grows
with the table is temporary disk space (about the size of both sides' compared data).

ROW_COUNT counts by token segment on Cassandra (never one whole-table ``count(*)``);
SAMPLE takes random keys from both sides (random ring positions on Cassandra,
``TABLESAMPLE`` on PostgreSQL), reads each from both, and gives a 95% Wilson interval; a table no
larger than the sample is examined whole.
"""

from __future__ import annotations

import datetime as dt
import itertools
import marshal
import math
import os
import random
import time
from collections.abc import Callable, Generator, Sequence
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
from reconciliation.engine.drift import drift_percentage, row_count_drift, wilson_interval
from reconciliation.engine.keys import BadKey, split_key
from reconciliation.engine.merge import Diff, PassCounts, agree, merge_by_token
from reconciliation.engine.postgres import PostgresTable
from reconciliation.engine.readable import primary_key_text
from reconciliation.engine.records import MARSHAL_VERSION, Codec
from reconciliation.engine.schema import SchemaError, TableSpec, Window, discover_layout
from reconciliation.engine.spill import RecordLog, SortedRuns, Spool
from reconciliation.engine.target_worker import TargetJob, TargetProcess, spill_target

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
    # The target's URL lets a big table's target be read by a child process, beside the
    # Cassandra scan (from ``target_process_min_rows`` estimated rows).
    target_url: str | None = None
    target_process_min_rows: int = 50_000
    target_process_nice: int = 0
    # Merge in the child too (the parent then only decodes Cassandra rows): better with
    # spare cores; on a small host the parent merging costs less CPU overall.
    merge_in_child: bool = True


@dataclass(frozen=True)
class Difference:
    """One row that differs, as the job stores it (a ``Mismatch``)."""

    primary_key_value: str
    mismatch_type: str
    cassandra_checksum: str | None
    postgres_checksum: str | None
    cassandra_data: dict[str, Any] | None
    postgres_data: dict[str, Any] | None


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
        self.child_peak_rss_mb: float | None = None  # of the target's child process, if any
        self.unreadable_values = 0  # in the rows reported

    # -- lookups ------------------------------------------------------------------------------

    def _read_both(
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
            c_rows, p_rows = self._read_both(batch)
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
                c_rows, p_rows = self._read_both(keys)
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
        found_c = dict(zip(need_c, self._read_both(need_c, postgres=False)[0], strict=True))
        found_p = dict(zip(need_p, self._read_both(need_p, cassandra=False)[1], strict=True))
        return [
            (
                key,
                found_c.get(key, c_row) if c_row is None else c_row,
                p_rows or found_p.get(key, ()),
            )
            for key, c_row, p_rows in batch
        ]

    # -- strategies -------------------------------------------------------------------------------

    def segments(self, estimate: int) -> list[tuple[int, int]]:
        return plan_segments(self.options, estimate)

    def estimate(self) -> int:
        return max(self.cassandra.estimated_rows(), self.postgres.estimated_rows())

    def row_count(self) -> Outcome:
        self.progress(0.05)
        postgres_rows = self.postgres.count()
        self.progress(0.2)
        segments = self.segments(max(self.estimate(), postgres_rows))
        cassandra_rows = self.cassandra.count(segments)
        return Outcome(
            cassandra_row_count=cassandra_rows,
            postgres_row_count=postgres_rows,
            keys_examined=max(cassandra_rows, postgres_rows),
            mismatch_count=abs(cassandra_rows - postgres_rows),
            drift_percentage=row_count_drift(cassandra_rows, postgres_rows),
        )

    def full_diff(self, window: Window | None = None) -> Outcome:
        """CHECKSUM (every row) or TIMESTAMP_RANGE (the window's rows on either side)."""
        estimate = self.estimate()
        segments = self.segments(estimate)
        with SortedRuns(self.options.run_size) as target:
            if self._target_in_child(estimate) and self.options.merge_in_child:
                counts, differences = self._diff_beside_child(segments, window, target.directory)
            elif self._target_in_child(estimate):
                counts, differences = self._diff_with_child_target(segments, window, target)
            else:
                counts, differences = self._diff_in_process(segments, window, target)
            with differences:
                verdicts = self.judge(differences, resolve_one_sided=window is not None)
        return Outcome(
            cassandra_row_count=counts.cassandra_rows,
            postgres_row_count=counts.postgres_rows,
            keys_examined=counts.keys,
            mismatch_count=verdicts.mismatches,
            transient_count=verdicts.transient,
            drift_percentage=drift_percentage(verdicts.mismatches, counts.keys),
        )

    def _target_in_child(self, estimate: int) -> bool:
        return (
            self.options.target_url is not None
            and estimate >= self.options.target_process_min_rows
            and self.codec.pairs_by_token
        )

    def _source_pages(
        self, segments: list[tuple[int, int]], window: Window | None
    ) -> Generator[list[tuple[Any, ...]], None, None]:
        def segment_done(done: int) -> None:
            self.progress(0.85 * done / len(segments))

        return self.cassandra.stream(segments, window, on_segment_done=segment_done)

    def _diff_in_process(
        self, segments: list[tuple[int, int]], window: Window | None, target: SortedRuns
    ) -> tuple[PassCounts, Spool]:
        """Small tables: read the target, then stream the source and merge, here."""
        with self.postgres.snapshot(window) as rows:
            spill_target(rows, self.codec.postgres_record, target)
        record = self.codec.cassandra_record
        source = (record(row) for page in self._source_pages(segments, window) for row in page)
        counts = PassCounts()
        differences = Spool()
        try:
            if self.codec.pairs_by_token:  # Cassandra's own order: no sort
                merge_by_token(source, target.merged(), differences, counts)
            else:  # key-hash pairing: the source is sorted by key hash too
                with SortedRuns(self.options.run_size) as sorted_source:
                    for page in self._source_pages(segments, window):
                        sorted_source.extend([record(row) for row in page])
                    merge_by_token(sorted_source.merged(), target.merged(), differences, counts)
        except BaseException:
            differences.close()
            raise
        return counts, differences

    def _diff_with_child_target(
        self, segments: list[tuple[int, int]], window: Window | None, target: SortedRuns
    ) -> tuple[PassCounts, Spool]:
        """Large tables: a child process reads and sorts the target while this process
        starts the source scan, keeping its first records in a disk spool (the merge needs
        the whole target sorted); then this process merges, as the rest streams."""
        assert self.options.target_url is not None
        child = TargetProcess(
            TargetJob(
                self.layout,
                self.options.target_url,
                window,
                self.options.run_size,
                target.directory,
                self.options.target_process_nice,
            )
        )
        record = self.codec.cassandra_record
        pages = self._source_pages(segments, window)
        counts = PassCounts()
        differences = Spool()
        try:
            with Spool() as head:
                for page in pages:
                    head.extend([record(row) for row in page])
                    if child.done():
                        break
                answer = child.result()
                target.adopt(answer["runs"], int(answer["count"]))
                self.child_peak_rss_mb = child.peak_rss_mb
                rest = (record(row) for page in pages for row in page)
                source = itertools.chain(head.records(), rest)
                merge_by_token(source, target.merged(), differences, counts)
        except BaseException:
            child.kill()
            pages.close()
            differences.close()
            raise
        return counts, differences

    def _diff_beside_child(
        self, segments: list[tuple[int, int]], window: Window | None, directory: str
    ) -> tuple[PassCounts, Spool]:
        """Large tables: a child process reads and sorts the target, then merges it with
        the source records this process scans and logs meanwhile (``target_worker.py``)."""
        assert self.options.target_url is not None
        source_log = os.path.join(directory, "source.log")
        differences = os.path.join(directory, "differences")
        log = RecordLog(source_log)
        child = TargetProcess(
            TargetJob(
                self.layout,
                self.options.target_url,
                window,
                self.options.run_size,
                directory,
                self.options.target_process_nice,
                source_log,
                differences,
            )
        )
        record = self.codec.cassandra_record
        pages = self._source_pages(segments, window)
        try:
            for page in pages:
                log.append([record(row) for row in page])
                if child.done():  # early: it failed (result() raises its error)
                    child.result()
                    raise RuntimeError("The target's child process ended before the merge.")
            log.close()
            answer = child.result()
        except BaseException:
            log.abandon()
            child.kill()
            pages.close()
            raise
        self.child_peak_rss_mb = child.peak_rss_mb
        return PassCounts(*answer["counts"]), Spool.reopen(differences, answer["differences"])

    def timestamp_range(self) -> Outcome:
        window = self.window()
        column = window.column
        types = self.layout.cassandra_types
        if column not in types:
            raise SchemaError(
                f"Timestamp column {column!r} does not exist in {self.spec.cassandra_label}."
            )
        if types[column].name != "timestamp":
            raise SchemaError(
                f"Timestamp column {column!r} of {self.spec.cassandra_label} is "
                f"{types[column]}, not timestamp."
            )
        if column not in self.layout.postgres_types:
            raise SchemaError(
                f"Timestamp column {column!r} is missing on the target table "
                f"{self.spec.postgres_label}."
            )
        outcome = self.full_diff(window)
        outcome.parameters = {"from": _iso(window.start), "to": _iso(window.end)}
        return outcome

    def window(self) -> Window:
        options = self.options
        end = options.window_to or dt.datetime.now(dt.UTC)
        span = dt.timedelta(minutes=options.interval_minutes + options.window_overlap_minutes)
        start = options.window_from or end - span
        if start >= end:
            raise SchemaError(
                f"The window's start {_iso(start)} is not before its end {_iso(end)}."
            )
        return Window(self.spec.timestamp_column, start, end)

    def sample(self) -> Outcome:
        size = self.options.sample_size
        estimate = self.estimate()
        if estimate < 2 * size:
            estimate = max(estimate, self.postgres.count())
        if estimate <= size:
            # A table no bigger than the sample is examined whole: the "sample" is exact.
            outcome = self.full_diff()
            outcome.cassandra_row_count = outcome.postgres_row_count = None
        else:
            outcome = self._random_sample(size, estimate)
        low, high = wilson_interval(outcome.mismatch_count, outcome.keys_examined)
        outcome.drift_ci_low, outcome.drift_ci_high = low, high
        outcome.parameters = {"sample_size": size}
        return outcome

    def _random_sample(self, size: int, estimate: int) -> Outcome:
        rng = random.Random(self.options.seed)
        keys: dict[bytes, None] = {}
        for row in self.cassandra.sample_keys(math.ceil(size / 2), rng):
            keys[self._key_bytes(row, self.codec._cassandra)] = None
        self.progress(0.2)
        for row in self.postgres.sample_keys(size // 2, estimate):
            keys[self._key_bytes(row, self.codec._postgres)] = None
        self.progress(0.4)
        examined = list(keys)
        with Spool() as differences:
            for start in range(0, len(examined), VERDICT_BATCH):
                batch = examined[start : start + VERDICT_BATCH]
                c_rows, p_rows = self._read_both(batch)
                for key, c_row, rows in zip(batch, c_rows, p_rows, strict=True):
                    if not agree(c_row, rows):
                        differences.add((key, c_row, rows))
                self.progress(0.4 + 0.5 * (start + len(batch)) / len(examined))
            verdicts = self.judge(differences)
        return Outcome(
            keys_examined=len(examined),
            mismatch_count=verdicts.mismatches,
            transient_count=verdicts.transient,
            drift_percentage=drift_percentage(verdicts.mismatches, len(examined)),
            examined_keys=[primary_key_text(self.codec.key_values(key)) for key in examined],
        )

    def _key_bytes(self, key_row: Sequence[Any], converters: list[tuple[int, Converter]]) -> bytes:
        size = self.codec.key_size
        values = list(key_row[:size])
        for index, convert in converters:
            if index < size and values[index] is not None:
                values[index] = convert(values[index])
        return marshal.dumps(tuple(values), MARSHAL_VERSION)

    def run(self, strategy: str) -> Outcome:
        runners = {
            ROW_COUNT: self.row_count,
            CHECKSUM: self.full_diff,
            TIMESTAMP_RANGE: self.timestamp_range,
            SAMPLE: self.sample,
        }
        if strategy not in runners:
            raise ValueError(f"Unknown validation strategy {strategy!r}.")
        outcome = runners[strategy]()
        outcome.schema_warnings = list(self.layout.warnings)
        outcome.unreadable_value_count = self.unreadable_values
        self.progress(1.0)
        return outcome


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def recheck_keys(
    spec: TableSpec,
    session: Session,
    connect: Connect,
    options: Options,
    primary_key_values: Sequence[str],
) -> list[Difference | None]:
    """Read these keys (``Mismatch.primary_key_value`` texts) back from both stores now and
    compare them: for each, its Difference as a job would report it, or None when the two
    sides agree.  The same key equality and lookups as the jobs' transient re-check.
    Read-only; raises BadKey for a key text that does not fit the table's key columns."""
    engine = Engine(spec, session, connect, options, report=lambda difference: None)
    keys = [engine.key_bytes_of(value) for value in primary_key_values]
    return engine.compare_keys(keys)


@dataclass(frozen=True)
class StoredKeys:
    """The key column values of every row equal to one key, as each store holds them."""

    cassandra: list[tuple[Any, ...]]
    postgres: list[tuple[Any, ...]]


def stored_keys(
    spec: TableSpec,
    session: Session,
    connect: Connect,
    options: Options,
    primary_key_value: str,
) -> StoredKeys:
    """Where "the same row" as ``primary_key_value`` is in each store, by the engine's one
    key equality (a uuid key the target keeps as upper-case text, a decimal key Cassandra
    keeps as 1.10): the key values to bind to find, lock, update or delete exactly those
    rows (repair, GDPR erasure).  Read-only; BadKey when the text does not fit the key."""
    engine = Engine(spec, session, connect, options, report=lambda difference: None)
    forms = [list(marshal.loads(engine.key_bytes_of(primary_key_value)))]
    codec = engine.codec
    size = len(engine.layout.key)
    width = len(engine.layout.columns)
    source = engine.cassandra.lookup_all(forms, lambda row: codec.cassandra_record(row)[1])
    target = engine.postgres.lookup(forms, lambda row: codec.postgres_record(row)[1], raw_key=True)
    return StoredKeys(
        cassandra=[_driver_key(engine, row[1 : 1 + size]) for row in source[0]],
        postgres=[tuple(row[width:]) for row in target[0]],
    )


def _driver_key(engine: Engine, values: Sequence[Any]) -> tuple[Any, ...]:
    # Timestamps are selected as epoch milliseconds (cassandra.select_column): bind them back
    # as UTC datetimes, which every driver code path accepts.
    key = []
    for column, value in zip(engine.layout.key, values, strict=True):
        if column.cql_type.name == "timestamp" and isinstance(value, int):
            value = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=value)
        key.append(value)
    return tuple(key)
