"""The names cdcrecon speaks, spelled as the guide spells them, defined once.

Plain strings, so the engine (which knows nothing of Django), forensics, the metrics and the
models' choices (``reconciliation.choices``, which adds the labels) all use the same ones.
"""

from __future__ import annotations

# -- validation strategies ---------------------------------------------------------------------
ROW_COUNT = "ROW_COUNT"
CHECKSUM = "CHECKSUM"
TIMESTAMP_RANGE = "TIMESTAMP_RANGE"
SAMPLE = "SAMPLE"
STRATEGIES = (ROW_COUNT, CHECKSUM, TIMESTAMP_RANGE, SAMPLE)

# -- mismatch types ----------------------------------------------------------------------------
MISSING_IN_POSTGRES = "MISSING_IN_POSTGRES"
MISSING_IN_CASSANDRA = "MISSING_IN_CASSANDRA"
DATA_MISMATCH = "DATA_MISMATCH"
MISMATCH_TYPES = (MISSING_IN_POSTGRES, MISSING_IN_CASSANDRA, DATA_MISMATCH)

# -- how a job tells drift from differences still in flight (a job's ``recheck_rule``) ----------
WRITE_TIME = "WRITE_TIME"
FIXED_DELAY = "FIXED_DELAY"
NO_RECHECK = "NONE"

#: A difference whose source row is younger than the table's CDC lag budget: its status, and
#: the lag verdict that gives it.
IN_FLIGHT = "IN_FLIGHT"


def written_within(written: float, seconds: float, now: float) -> bool:
    """Whether a write at ``written`` (epoch seconds) is less than ``seconds`` before ``now``:
    the one test of "written too recently", for the CDC lag budget (``engine.lag``) and the
    repair policy's minimum age (``repair.policy``)."""
    return written + seconds > now
