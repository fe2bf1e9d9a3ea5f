"""ROW_COUNT: the two tables' row counts, and their difference as drift.

Cassandra is counted one token range at a time (``count_range``, never one whole-table
``count(*)``), so a job can spread the ranges over workers; the target is one ``count(*)``.
"""

from __future__ import annotations

from reconciliation.engine.core import Engine, plan_segments, strategy
from reconciliation.engine.drift import row_count_drift
from reconciliation.engine.records import MAX_TOKEN, MIN_TOKEN
from reconciliation.engine.ring import split_range
from reconciliation.engine.terms import Outcome
from reconciliation.vocabulary import ROW_COUNT


def count_range(engine: Engine, token_range: tuple[int, int], pieces: int = 8) -> int:
    """The source's rows in ``(start, end]``, one ``count(*)`` per sub-range."""
    return engine.cassandra.count(split_range(*token_range, pieces))


def outcome(cassandra_rows: int, postgres_rows: int) -> Outcome:
    return Outcome(
        cassandra_row_count=cassandra_rows,
        postgres_row_count=postgres_rows,
        keys_examined=max(cassandra_rows, postgres_rows),
        mismatch_count=abs(cassandra_rows - postgres_rows),
        drift_percentage=row_count_drift(cassandra_rows, postgres_rows),
    )


@strategy(ROW_COUNT)
def run(engine: Engine) -> Outcome:
    engine.progress(0.05)
    postgres_rows = engine.postgres.count()
    engine.progress(0.2)
    pieces = plan_segments(engine.options, max(engine.estimate(), postgres_rows))
    cassandra_rows = engine.cassandra.count(pieces)
    assert pieces[0][0] == MIN_TOKEN and pieces[-1][1] == MAX_TOKEN
    return outcome(cassandra_rows, postgres_rows)
