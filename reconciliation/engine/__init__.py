"""The diff engine: pure comparison code, no Django.

What the rest of cdcrecon uses, all importable from here:

* ``Engine(spec, session, connect, options, report, progress)``: one reconciliation of one
  table.  ``engine.run(strategy)`` runs a whole strategy in this process (differences go to
  ``report``, the counters come back as an ``Outcome``); ``engine.read_keys(keys)`` /
  ``compare_keys`` read keys back from both stores now.
* The pieces a distributed job is made of (``keydiff``, ``row_count``): ``plan`` splits a
  table into token ranges to compare and target block ranges to stage; ``stage_records``,
  ``compare_range``, ``count_range`` run one piece; ``conclude`` re-checks and reports
  every piece's differences once; ``keydiff_outcome`` / ``row_count_outcome`` make the
  counters.
* ``lag_verdict`` (``lag``): in flight, expired or drift, by a source row's write time
  against the table's CDC lag budget (the job's verdicts and the later re-check).
* ``recheck_keys`` and ``stored_keys`` (``lookups``): a ledger row's re-check, and where
  "the same row" is in each store (repair, erasure).

Rows are "the same row" by one rule everywhere (merge, SAMPLE, re-check, repair, erasure):
their key columns' compare forms are equal (``records.py``, ``canonical.py``).  Each
strategy has its module: ``row_count``, ``checksum``, ``timestamp_range``, ``sample``.
"""

# The strategy modules join the engine's runners (``core.RUNNERS``) as they are imported.
from reconciliation.engine import checksum, row_count, sample, timestamp_range  # noqa: F401
from reconciliation.engine.core import Engine
from reconciliation.engine.judging import RECHECK_PROGRESS, Verdicts
from reconciliation.engine.keydiff import (
    Plan,
    RangeResult,
    compare_range,
    conclude,
    plan,
    row_digest,
    stage_records,
)
from reconciliation.engine.keydiff import outcome as keydiff_outcome
from reconciliation.engine.lag import LagVerdict, lag_verdict
from reconciliation.engine.lookups import StoredKeys, recheck_keys, stored_keys
from reconciliation.engine.row_count import count_range
from reconciliation.engine.row_count import outcome as row_count_outcome
from reconciliation.engine.terms import (
    Connect,
    Difference,
    KeyReading,
    Options,
    Outcome,
    Progress,
    Report,
)
from reconciliation.engine.timestamp_range import parameters as window_parameters
from reconciliation.engine.timestamp_range import window as checked_window
from reconciliation.vocabulary import (
    CHECKSUM,
    DATA_MISMATCH,
    FIXED_DELAY,
    MISSING_IN_CASSANDRA,
    MISSING_IN_POSTGRES,
    NO_RECHECK,
    ROW_COUNT,
    SAMPLE,
    STRATEGIES,
    TIMESTAMP_RANGE,
    WRITE_TIME,
)

__all__ = [
    "CHECKSUM",
    "DATA_MISMATCH",
    "FIXED_DELAY",
    "MISSING_IN_CASSANDRA",
    "MISSING_IN_POSTGRES",
    "NO_RECHECK",
    "RECHECK_PROGRESS",
    "ROW_COUNT",
    "SAMPLE",
    "STRATEGIES",
    "TIMESTAMP_RANGE",
    "WRITE_TIME",
    "Connect",
    "Difference",
    "Engine",
    "KeyReading",
    "LagVerdict",
    "Options",
    "Outcome",
    "Plan",
    "Progress",
    "RangeResult",
    "Report",
    "StoredKeys",
    "Verdicts",
    "checked_window",
    "compare_range",
    "conclude",
    "count_range",
    "keydiff_outcome",
    "lag_verdict",
    "plan",
    "recheck_keys",
    "row_count_outcome",
    "row_digest",
    "stage_records",
    "stored_keys",
    "window_parameters",
]
