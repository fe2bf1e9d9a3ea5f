"""The engine's terms: what a run is told (``Options``) and what it gives back
(``Difference``, ``KeyReading``, ``Outcome``); the names it speaks in (strategies, mismatch
types, re-check rules) are ``reconciliation.vocabulary``'s.  Plain data, so every strategy
module and every caller can use them without the engine itself."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from reconciliation.engine.cassandra import ReadLimiter

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
    # The table's CDC lag budget (seconds): a difference whose source row was written less
    # than this before it was read is in flight, not drift.  0: no budget (fixed delay).
    lag_budget_seconds: float = 0.0
    # Read each source row's write time and TTL in the pass (False: the bench's baseline).
    write_times: bool = True
    # Compare equal rows by their byte forms, without decoding them (``rowhash.py``); off:
    # every value is decoded in the scan, as a table with many differences prefers.
    byte_forms: bool = True
    # When the job's reads began (epoch seconds; None: when the engine was made).
    reads_began_at: float | None = None
    # The read-rate cap on the source (``reconciliation.ratelimit``; None: no cap).
    source_limiter: ReadLimiter | None = field(default=None, compare=False)


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
    # In flight (the source row is younger than the CDC lag budget): not drift until it has
    # been read again after this time (epoch seconds).  None: a difference now.
    recheck_after: float | None = None


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
    # Differences in flight (reported with recheck_after, not in mismatch_count), and those
    # whose source row's TTL runs out before they could be re-checked (not reported).
    in_flight_count: int = 0
    expired_count: int = 0
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


Report = Callable[[Difference], None]
Progress = Callable[[float], None]
