"""The engine side of the mismatch ledger: reading keys now, and what a run covered.

The lifecycle itself (open, refresh, heal, reopen, ignore) is decided in the model layer
(``Mismatch.see``, ``MismatchQuerySet.record_findings`` / ``heal``); this module gives it
what only the engine can tell:

* ``read_now`` / ``compare_now``: a key's rows read again from both stores through the
  engine's own lookups (``CassandraTable.lookup``, ``PostgresTable.lookup``) and compared
  with its equality (``merge.agree``) — ``Mismatch.recheck`` and TIMESTAMP_RANGE healing
  use it; there is no second lookup.
* ``Coverage``: which keys a run examined, so that healing only closes what the run saw.
  CHECKSUM covers every key; SAMPLE the keys it drew (recorded from the lookups it makes;
  a table no larger than the sample is examined whole); TIMESTAMP_RANGE the keys whose rows
  fall in its window (decided per open difference by reading its rows now: the rows agree
  and either side's timestamp is in ``[from, to)``); ROW_COUNT none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cassandra.cluster import Session

from reconciliation.choices import ValidationStrategy
from reconciliation.connections import cassandra_session, consistency_level, target_connection
from reconciliation.engine.canonical import primary_key_text
from reconciliation.engine.keys import BadKey, split_key
from reconciliation.engine.merge import agree
from reconciliation.engine.strategies import (
    DATA_MISMATCH,
    MISSING_IN_CASSANDRA,
    MISSING_IN_POSTGRES,
    Difference,
    Engine,
    Options,
    Outcome,
    Progress,
    Report,
)
from reconciliation.models import Finding, Mismatch, ReconciliationJob, TableMapping
from reconciliation.registry import ensure_key_columns, get_mapping

LOOKUP_BATCH = 500


def _ignore(difference: Difference) -> None:
    return None


def engine_for(
    mapping: TableMapping,
    options: Options | None = None,
    report: Report = _ignore,
    progress: Progress | None = None,
    session: Session | None = None,
) -> Engine:
    from reconciliation.jobs import table_spec

    session = session or cassandra_session()
    ensure_key_columns(mapping, session)
    options = options or Options(consistency=consistency_level())
    if progress is None:
        return Engine(table_spec(mapping), session, target_connection, options, report)
    return Engine(table_spec(mapping), session, target_connection, options, report, progress)


@dataclass
class KeyNow:
    """One key as read now: ``finding`` is None when both sides agree."""

    finding: Finding | None
    rows: list[dict[str, Any]] = field(default_factory=list)  # both sides' rows, readable


def compare_now(engine: Engine, keys: Sequence[str]) -> dict[str, KeyNow]:
    """Each key's rows read now from both stores and compared (keys that are not valid
    for the table are left out)."""
    arity = len(engine.layout.key)
    codec = engine.codec
    answer: dict[str, KeyNow] = {}
    for start in range(0, len(keys), LOOKUP_BATCH):
        batch: list[str] = []
        canonical: list[list[str]] = []
        for key in keys[start : start + LOOKUP_BATCH]:
            try:
                canonical.append(split_key(key, arity))
            except BadKey:
                continue
            batch.append(key)
        c_rows = engine.cassandra.lookup(canonical)
        p_rows = engine.postgres.lookup(canonical)
        for key, c_found, p_found in zip(batch, c_rows, p_rows, strict=True):
            c_record = codec.cassandra_record(c_found) if c_found is not None else None
            p_records = [codec.postgres_record(r) for r in p_found]
            c_row = c_record[2] if c_record is not None else None
            p_row_bytes = tuple(r[2] for r in p_records)
            key_bytes = c_record[1] if c_record is not None else None
            if key_bytes is None and p_records:
                key_bytes = p_records[0][1]
            rows = []
            if key_bytes is not None:
                if c_row is not None:
                    rows.append(codec.display(key_bytes, c_row))
                rows.extend(codec.display(key_bytes, r) for r in p_row_bytes)
            if agree(c_row, p_row_bytes) or key_bytes is None:
                answer[key] = KeyNow(None, rows)
                continue
            # As the engine reports a difference (Engine._emit): the first differing
            # target row stands for the target.
            p_row = (
                next((r for r in p_row_bytes if r != c_row), p_row_bytes[0])
                if p_row_bytes
                else None
            )
            kind = (
                MISSING_IN_CASSANDRA
                if c_row is None
                else MISSING_IN_POSTGRES
                if p_row is None
                else DATA_MISMATCH
            )
            answer[key] = KeyNow(
                Finding(
                    primary_key_value=key,
                    mismatch_type=kind,
                    cassandra_checksum=None if c_row is None else codec.checksum(key_bytes, c_row),
                    postgres_checksum=None if p_row is None else codec.checksum(key_bytes, p_row),
                    cassandra_data=None if c_row is None else codec.display(key_bytes, c_row),
                    postgres_data=None if p_row is None else codec.display(key_bytes, p_row),
                ),
                rows,
            )
    return answer


def read_now(table_name: str, primary_key_value: str) -> Finding | None:
    """The key's difference as it stands now, or None when both stores agree."""
    engine = engine_for(get_mapping(table_name))
    found = compare_now(engine, [primary_key_value]).get(primary_key_value)
    if found is None:
        raise BadKey(f"{primary_key_value!r} is not a key of table {table_name!r}.")
    return found.finding


# -- coverage ----------------------------------------------------------------------------------


class LookupRecorder:
    """Records the keys an engine looks up (its SAMPLE draws every key it examines through
    ``CassandraTable.lookup``; a full diff looks up only keys that differed)."""

    def __init__(self, engine: Engine) -> None:
        self.keys: set[str] = set()
        lookup = engine.cassandra.lookup

        def recording_lookup(canonical_keys: Sequence[Sequence[Any]]) -> Any:
            self.keys.update(primary_key_text(k) for k in canonical_keys)
            return lookup(canonical_keys)

        setattr(engine.cassandra, "lookup", recording_lookup)  # noqa: B010


def heal_covered(
    job: ReconciliationJob, engine: Engine, outcome: Outcome, recorder: LookupRecorder
) -> int:
    """Close the open differences ``job`` covered and did not find; returns how many."""
    if not outcome.keys_examined:
        return 0
    strategy = job.validation_strategy
    ledger = Mismatch.objects
    if strategy == ValidationStrategy.CHECKSUM:
        return ledger.heal(job)
    if strategy == ValidationStrategy.SAMPLE:
        # A random sample looks every drawn key up: as many distinct keys as examined.
        # Fewer means the table was examined whole (a full diff looks up differences only).
        if len(recorder.keys) >= outcome.keys_examined:
            return ledger.heal(job, sorted(recorder.keys))
        return ledger.heal(job)
    if strategy == ValidationStrategy.TIMESTAMP_RANGE:
        return ledger.heal(job, _in_window_and_equal(job, engine, outcome))
    return 0


def _in_window_and_equal(job: ReconciliationJob, engine: Engine, outcome: Outcome) -> list[str]:
    window = {**(job.parameters or {}), **outcome.parameters}
    start, end = _time(window.get("from")), _time(window.get("to"))
    column = engine.spec.timestamp_column
    candidates = list(
        Mismatch.objects.filter(table_name=job.table_name)
        .open()
        .exclude(last_job=job)
        .values_list("primary_key_value", flat=True)
    )
    covered = []
    for key, now in compare_now(engine, candidates).items():
        if now.finding is not None:
            continue
        stamps = [_time(row.get(column)) for row in now.rows]
        if any(
            s is not None and (start is None or s >= start) and (end is None or s < end)
            for s in stamps
        ):
            covered.append(key)
    return covered


def _time(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
