"""SAMPLE: random keys from both sides, each read from both stores, with a 95% Wilson
interval on the drift.

Keys come from random ring positions on Cassandra and ``TABLESAMPLE`` on PostgreSQL; each is
read back from both stores by the engine's key equality.  A table no larger than the sample
is examined whole (``keydiff.full_diff``): the "sample" is then exact.
"""

from __future__ import annotations

import math
import random

from reconciliation.engine.core import Engine, strategy
from reconciliation.engine.drift import drift_percentage, wilson_interval
from reconciliation.engine.judging import VERDICT_BATCH
from reconciliation.engine.keydiff import full_diff
from reconciliation.engine.merge import agree
from reconciliation.engine.readable import primary_key_text
from reconciliation.engine.spill import Spool
from reconciliation.engine.terms import Outcome
from reconciliation.vocabulary import SAMPLE


@strategy(SAMPLE)
def run(engine: Engine) -> Outcome:
    size = engine.options.sample_size
    estimate = engine.estimate()
    if estimate < 2 * size:
        estimate = max(estimate, engine.postgres.count())
    if estimate <= size:
        # A table no bigger than the sample is examined whole: the "sample" is exact.
        outcome = full_diff(engine)
        outcome.cassandra_row_count = outcome.postgres_row_count = None
    else:
        outcome = _random_sample(engine, size, estimate)
    low, high = wilson_interval(outcome.mismatch_count, outcome.keys_examined)
    outcome.drift_ci_low, outcome.drift_ci_high = low, high
    outcome.parameters = {"sample_size": size}
    return outcome


def _random_sample(engine: Engine, size: int, estimate: int) -> Outcome:
    rng = random.Random(engine.options.seed)
    keys: dict[bytes, None] = {}
    for row in engine.cassandra.sample_keys(math.ceil(size / 2), rng):
        keys[engine.key_of_row(row, engine.codec._cassandra)] = None
    engine.progress(0.2)
    for row in engine.postgres.sample_keys(size // 2, estimate):
        keys[engine.key_of_row(row, engine.codec._postgres)] = None
    engine.progress(0.4)
    examined = list(keys)
    with Spool() as differences:
        for start in range(0, len(examined), VERDICT_BATCH):
            batch = examined[start : start + VERDICT_BATCH]
            c_rows, p_rows, writes = engine.read_both(batch)
            for key, c_row, rows, written in zip(batch, c_rows, p_rows, writes, strict=True):
                if not agree(c_row, rows):
                    differences.add((key, c_row, rows, written))
            engine.progress(0.4 + 0.5 * (start + len(batch)) / len(examined))
        verdicts = engine.judge(differences)
    return Outcome(
        keys_examined=len(examined),
        mismatch_count=verdicts.mismatches,
        transient_count=verdicts.transient,
        in_flight_count=verdicts.in_flight,
        expired_count=verdicts.expired,
        drift_percentage=drift_percentage(verdicts.mismatches, len(examined)),
        examined_keys=[primary_key_text(engine.codec.key_values(key)) for key in examined],
    )
