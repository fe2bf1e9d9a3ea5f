"""The key-by-key diff that CHECKSUM and TIMESTAMP_RANGE share, in pieces any worker can run.

PostgreSQL cannot order rows by Cassandra's Murmur3 token and Cassandra cannot order rows by
key, so the diff brings both sides into **token order** and merges them.  It comes in three
kinds of piece, so that one job can spread over many processes on many hosts that share
nothing but the stores (``reconciliation/jobs/`` runs each piece as a Celery task):

1. **Stage** (``stage_records``): one range of the target table's heap blocks (a TID range
   scan: any table, with or without a primary key, is split without an index) is read in
   one snapshot with binary COPY.  Each row becomes a record ``(token, key bytes, row
   hash)``: its key's compare forms (``canonical.py``) marshalled, its partition key hashed
   to the Murmur3 token exactly as Cassandra would (``records.py``), and a 16-byte BLAKE2b
   hash of its compared values (``row_digest``).  The caller stores the records where every
   worker can read them by token range (the job's staging table in the app database,
   sorted into the job's token ranges, a block of records per row).
2. **Compare** (``compare_range``): one token range ``(start, end]`` of the source is read
   from Cassandra (split into a few sub-ranges read concurrently, handed over in token
   order) and merged (``merge.merge_by_token``) with the staged target records of the same
   range.  Rows pair by key bytes within a token; a key on one side only is
   MISSING_IN_POSTGRES / MISSING_IN_CASSANDRA, a pair whose hashes differ is a
   DATA_MISMATCH candidate.  The differences (the source row's bytes, the target rows'
   hashes) go to a spool on local disk and from there to the caller.
3. **Conclude** (``conclude``): once, over every piece's differences: the target rows of the
   differing keys are read back (their bytes, for the report), and each key is judged
   (``Engine.judge``: by its source row's write time against the CDC lag budget, or read
   again after ``recheck_delay_seconds``; a key that agrees now is transient).

Why a staging table, and what it costs: the target has no token column, and computing
tokens needs every row's key in Python, so *some* pass must read the whole target once.
Staging does that pass once, split by block range across workers, and writes about
``40 + key`` bytes per row to the app database, in blocks of thousands of records (no
per-row insert or index entry); every compare piece then reads only its own range's blocks.
The alternatives read the whole target once per piece (N× the target's I/O) or hold it in
one process (no spreading, no resume).  Memory per piece is bounded by the piece's size
(``RECONCILIATION_SEGMENT_ROWS``): a stage piece sorts its records in memory before writing,
a compare piece holds its range's staged records.  The staging table is dropped when the
job completes.

When the partition key has a column whose token the target cannot reproduce (a decimal's
scale, ...; ``records.py``, "key-hash pairing"), records are ordered by a hash of their key
bytes instead: the source cannot be split by that order, so such a table is compared as one
piece covering the whole ring, its source sorted on local disk (``spill.SortedRuns``).

Memory is bounded by constants (a sort run, a few Cassandra pages in flight, one token
group, one verdict batch) and, for a compare piece, by its range's share of the table (its
staged records are held in memory): never by the whole table.

``full_diff`` runs the same pieces in this process (staging in local sorted runs): what
``Engine.run`` does for a CHECKSUM or TIMESTAMP_RANGE, and SAMPLE for a small table.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from reconciliation.engine.core import Engine, plan_segments
from reconciliation.engine.drift import drift_percentage
from reconciliation.engine.judging import VERDICT_BATCH, Verdicts
from reconciliation.engine.merge import Diff, PassCounts, Record, agree, merge_by_token
from reconciliation.engine.records import MAX_TOKEN, MIN_TOKEN
from reconciliation.engine.ring import split_range
from reconciliation.engine.schema import Window
from reconciliation.engine.spill import SortedRuns, Spool
from reconciliation.engine.terms import Outcome

DIGEST_SIZE = 16


def row_digest(row: bytes) -> bytes:
    """The staged hash of a row's compared values (BLAKE2b, 16 bytes)."""
    return hashlib.blake2b(row, digest_size=DIGEST_SIZE).digest()


# -- the plan -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How a job splits: token ranges ``(start, end]`` to compare, and block ranges
    ``[first, end)`` of the target to stage (the last one open-ended)."""

    compare: list[tuple[int, int]]
    stage: list[tuple[int, int | None]]


def plan(
    engine: Engine,
    *,
    rows_per_segment: int,
    min_segments: int,
    max_segments: int,
    stage: bool = True,
) -> Plan:
    """Segments sized from the tables' own estimates (Cassandra's
    ``system.size_estimates``, the target's ``reltuples``): about ``rows_per_segment``
    rows each, between ``min_segments`` and ``max_segments`` of them."""
    cassandra_rows = engine.cassandra.estimated_rows()
    postgres_rows = engine.postgres.estimated_rows()

    def count(rows: int, low: int) -> int:
        return max(low, min(max_segments, math.ceil(rows / max(1, rows_per_segment))))

    if engine.codec.pairs_by_token:
        ranges = split_range(
            MIN_TOKEN, MAX_TOKEN, count(max(cassandra_rows, postgres_rows), min_segments)
        )
    else:  # key-hash pairing: one piece over the whole ring (module docstring)
        ranges = [(MIN_TOKEN, MAX_TOKEN)]
    chunks: list[tuple[int, int | None]] = []
    if stage:
        blocks = engine.postgres.block_count()
        pieces = min(count(postgres_rows, 1), max(1, blocks))
        bounds = [blocks * i // pieces for i in range(pieces)]
        chunks = [(first, end) for first, end in zip(bounds, bounds[1:], strict=False)]
        chunks.append((bounds[-1], None))
    return Plan(ranges, chunks)


# -- the pieces -----------------------------------------------------------------------------------


def stage_records(
    engine: Engine, blocks: tuple[int, int | None] | None, window: Window | None
) -> Iterator[Record]:
    """Records ``(token, key bytes, row hash)`` of the target rows in ``blocks`` (all of
    them for None), in the window if any, in no particular order."""
    if engine.scan.hashed:  # the target computed each row's byte-form digest (rowhash.py)
        with engine.postgres.snapshot(window, blocks, hashed=True) as rows:
            yield from map(engine.scan.postgres_record, rows)
        return
    record = engine.codec.postgres_record
    with engine.postgres.snapshot(window, blocks) as rows:
        for token, key, row in map(record, rows):
            yield token, key, row_digest(row)


@dataclass
class RangeResult:
    """A compare piece's counts and its differences: ``(key bytes, source row bytes or
    None, (target row hashes...))``."""

    counts: PassCounts
    differences: Spool


def compare_range(
    engine: Engine,
    token_range: tuple[int, int],
    window: Window | None,
    staged: Iterator[Record],
    *,
    pieces: list[tuple[int, int]] | None = None,
    on_piece_done: Callable[[int], None] | None = None,
) -> RangeResult:
    """Merge the source's rows in ``token_range`` with ``staged``: the target's records of
    the same range, in token order."""
    start, end = token_range
    if pieces is None:
        pieces = split_range(start, end, engine.options.parallel * 2)
    scan = engine.scan
    record = scan.cassandra_record
    pages = engine.cassandra.stream(
        pieces, window, on_segment_done=on_piece_done, selectors=scan.cassandra_selectors
    )
    # By byte form the source's records carry row hashes already; otherwise its row bytes
    # are hashed to meet the staged hashes.
    digest = None if scan.hashed else row_digest
    counts = PassCounts()
    differences = Spool()
    try:
        if engine.codec.pairs_by_token:  # Cassandra's own order: no sort
            source = (record(row) for page in pages for row in page)
            merge_by_token(source, staged, differences, counts, digest)
        else:  # key-hash pairing: the source is sorted by key hash too
            with SortedRuns(engine.options.run_size) as sorted_source:
                for page in pages:
                    sorted_source.extend([record(row) for row in page])
                merge_by_token(sorted_source.merged(), staged, differences, counts, digest)
    except BaseException:
        pages.close()
        differences.close()
        raise
    return RangeResult(counts, differences)


def conclude(
    engine: Engine, differences: Iterable[Diff], *, window: Window | None = None
) -> Verdicts:
    """Decide every difference the pieces found: the target's rows of each key are read
    back (the pieces kept only their hashes), then ``Engine.judge`` re-checks and reports."""
    with Spool() as spool:
        batches = iter(differences)
        while batch := list(itertools.islice(batches, VERDICT_BATCH)):
            if engine.scan.hashed:
                batch = _decoded(engine, batch)
            elif not engine.rereads_everything:
                # judge reports (most of) these from the pass's rows without reading again:
                # give it the target's rows themselves (a key the pass saw on the source
                # only stays so: judge resolves it for a window, as it always has).
                need = [key for key, _, hashes, _ in batch if hashes]
                rows = dict(zip(need, engine.read_both(need, cassandra=False)[1], strict=True))
                batch = [
                    (key, c_row, rows[key] if hashes else (), written)
                    for key, c_row, hashes, written in batch
                ]
            spool.extend(batch)
        return engine.judge(spool, resolve_one_sided=window is not None)


def _decoded(engine: Engine, batch: list[Diff]) -> list[Diff]:
    """A scan by byte form kept hashes only: the sides the pass saw each key on are read
    back, decoded (the source with its row's write time), to be judged by the full type
    rules; a side the pass did not see it on stays absent, as a decoded pass leaves it.  A
    key seen on both sides that agrees now, with both sides' hashes what the pass saw,
    differs in representation only (a decimal's scale, a time's nanoseconds): it is no
    difference.  Any other goes to the verdict as read (in flight, or arrived since)."""
    on_source = [d[0] for d in batch if d[1] is not None]
    on_target = [d[0] for d in batch if d[2]]
    c_rows, _, writes = engine.read_both(on_source, postgres=False)
    source = dict(zip(on_source, zip(c_rows, writes, strict=True), strict=True))
    target = dict(zip(on_target, engine.read_both(on_target, cassandra=False)[1], strict=True))
    now = [
        (key, *source.get(key, (None, None)), target.get(key, ()), seen_c, seen_p)
        for key, seen_c, seen_p, _ in batch
    ]
    agreeing = [
        key
        for key, c_row, _, rows, seen_c, seen_p in now
        if seen_c is not None and seen_p and agree(c_row, rows)
    ]
    unchanged: set[bytes] = set()
    if agreeing:
        c_hashes, p_hashes = engine.scan.hashes_now(agreeing)
        seen = {key: (seen_c, seen_p) for key, _, _, _, seen_c, seen_p in now}
        unchanged = {
            key
            for key, c_hash, p_hash in zip(agreeing, c_hashes, p_hashes, strict=True)
            if seen[key] == (c_hash, p_hash)
        }
    return [
        (key, c_row, rows, written)
        for key, c_row, written, rows, _, _ in now
        if key not in unchanged
    ]


def outcome(counts: PassCounts, verdicts: Verdicts) -> Outcome:
    """The counters of a key-by-key diff: in-flight and expired differences are examined
    but not drift."""
    return Outcome(
        cassandra_row_count=counts.cassandra_rows,
        postgres_row_count=counts.postgres_rows,
        keys_examined=counts.keys,
        mismatch_count=verdicts.mismatches,
        transient_count=verdicts.transient,
        in_flight_count=verdicts.in_flight,
        expired_count=verdicts.expired,
        drift_percentage=drift_percentage(verdicts.mismatches, counts.keys),
    )


def full_diff(engine: Engine, window: Window | None = None) -> Outcome:
    """The whole diff in this process: stage the target in local sorted runs, compare the
    whole ring as one piece, conclude."""
    estimate = engine.estimate()
    pieces = plan_segments(engine.options, estimate)
    engine.progress(0.05)
    with SortedRuns(engine.options.run_size) as target:
        staged = stage_records(engine, None, window)
        while batch := list(itertools.islice(staged, 10_000)):
            target.extend(batch)
        engine.progress(0.3)

        def piece_done(done: int) -> None:
            engine.progress(0.3 + 0.55 * done / len(pieces))

        result = compare_range(
            engine,
            (MIN_TOKEN, MAX_TOKEN),
            window,
            target.merged(),
            pieces=pieces,
            on_piece_done=piece_done,
        )
    with result.differences as differences:
        verdicts = conclude(engine, differences.records(), window=window)
    return outcome(result.counts, verdicts)
