"""Drift: how much of a table is out of sync, as a percentage.

* key-by-key strategies: ``100 × mismatches / keys examined`` (keys examined is the union
  of the keys seen on either side), 0 when both sides are empty;
* ROW_COUNT: ``100 × |c − p| / max(c, p)``;
* SAMPLE: the same ratio over the sampled keys, with a 95% Wilson score interval.
"""

from __future__ import annotations

import math

Z_95 = 1.959963984540054


def drift_percentage(mismatch_count: int, keys_examined: int) -> float:
    if keys_examined <= 0:
        return 0.0
    return 100.0 * mismatch_count / keys_examined


def row_count_drift(cassandra_rows: int, postgres_rows: int) -> float:
    """The guide's example: 1,000,000 vs 995,000 rows gives 0.5."""
    largest = max(cassandra_rows, postgres_rows)
    if largest <= 0:
        return 0.0
    return 100.0 * abs(cassandra_rows - postgres_rows) / largest


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion, in percent; (0, 0) with no trials."""
    if trials <= 0:
        return (0.0, 0.0)
    p = successes / trials
    z2 = z * z
    denominator = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denominator
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    if successes == 0:
        low = 0.0
    if successes == trials:
        high = 1.0
    return (100.0 * low, 100.0 * high)
