"""Lag-aware verdicts: is a difference drift, or a write the CDC pipeline has not copied yet?

Cassandra says when each source row was written (``WRITETIME``) and when it expires
(``TTL``; ``records.source_write``).  With a table's *CDC lag budget* B (the longest the
pipeline may take to copy a write), a difference whose source row was written less than B
ago is **in flight**: not drift (yet), re-checked once B has passed.  ``lag_verdict`` is the
one decision, used by a job's verdict step (``Engine.judge``) and by the later re-check of
in-flight differences (``reconciliation.ledger.inflight``):

* MISSING_IN_CASSANDRA, or a source row without a readable write time: no write time to
  judge by; the fixed-delay re-check applies (``FIXED_DELAY``);
* written within B of now: ``IN_FLIGHT`` until ``recheck_after`` = write time + B + a small
  margin (a write time in the future, from a skewed client clock, counts as now, so nothing
  waits longer than B) — unless the row expires before then (``EXPIRED``: its TTL runs out
  before it could be re-checked, so it is not a difference);
* already expired: ``EXPIRED``;
* written more than B ago but less than B before the reads began: it may have been in flight
  when it was read and its budget has passed since: ``READ_AGAIN`` (now);
* otherwise: ``DRIFT``, at once (no grace sleep).

``waited_for``: a write time (µs) that already had its budget (the later re-check of an
in-flight difference): the same write is never in flight twice, so a row with a write time
in the future cannot stay in flight forever.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciliation.engine.records import SourceWrite
from reconciliation.vocabulary import FIXED_DELAY, IN_FLIGHT, MISSING_IN_CASSANDRA, written_within

# The verdicts besides IN_FLIGHT and FIXED_DELAY (the vocabulary's: a status, a re-check rule).
EXPIRED = "EXPIRED"
DRIFT = "DRIFT"
READ_AGAIN = "READ_AGAIN"

#: Added to write time + budget before an in-flight difference is read again (clock skew
#: between Cassandra's writers and this host, and the re-check's own scheduling).
MARGIN_SECONDS = 2.0


@dataclass(frozen=True)
class LagVerdict:
    kind: str
    #: IN_FLIGHT: when (epoch seconds) the difference is read again.
    recheck_after: float | None = None


def lag_verdict(
    mismatch_type: str,
    written: SourceWrite | None,
    *,
    now: float,
    budget: float,
    reads_began_at: float,
    waited_for: int | None = None,
) -> LagVerdict:
    """The verdict on one difference (module docstring); times in epoch seconds, the write
    time in microseconds as Cassandra keeps it."""
    if mismatch_type == MISSING_IN_CASSANDRA or written is None:
        return LagVerdict(FIXED_DELAY)
    write_us, expires = written
    wrote = write_us / 1_000_000
    fresh = waited_for is None or write_us > waited_for
    if fresh and written_within(wrote, budget, now):
        recheck_after = min(wrote, now) + budget + MARGIN_SECONDS
        if expires is not None and expires <= recheck_after:
            return LagVerdict(EXPIRED)
        return LagVerdict(IN_FLIGHT, recheck_after)
    if expires is not None and expires <= now:
        return LagVerdict(EXPIRED)
    if fresh and written_within(wrote, budget, reads_began_at):
        return LagVerdict(READ_AGAIN)
    return LagVerdict(DRIFT)
