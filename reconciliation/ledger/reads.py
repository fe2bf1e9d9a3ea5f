"""The engine side of the mismatch ledger: reading keys now, and what a run covered.

The lifecycle itself (open, refresh, heal, reopen, ignore) is decided in the model layer
(``ledger.record``: ``record_findings``, ``heal``, ``apply_reading``); this module gives it
what only the engine can tell:

* ``read_now`` / ``compare_now``: a key's rows read again from both stores through the
  engine's own lookups and key equality (``Engine.read_keys``, the transient re-check's
  path) — ``recheck`` (then ``record.apply_reading``) and TIMESTAMP_RANGE healing use it;
  there is no second lookup.  The models never import this module.
* ``heal_covered``: which keys a run examined, so that healing only closes what the run saw.
  CHECKSUM covers every key; SAMPLE the keys it drew (``Outcome.examined_keys``; a table no
  larger than the sample is examined whole); TIMESTAMP_RANGE the keys whose rows
  fall in its window (decided per open difference by reading its rows now: the rows agree
  and either side's timestamp is in ``[from, to)``); ROW_COUNT none.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Sequence
from typing import Any, cast

from cassandra.cluster import Session

from reconciliation.choices import ValidationStrategy
from reconciliation.connections import (
    ResilientSession,
    consistency_level,
    healthy_cassandra_session,
    target_connection,
)
from reconciliation.engine import (
    Difference,
    Engine,
    KeyReading,
    Options,
    Outcome,
    Progress,
    Report,
    lag_verdict,
)
from reconciliation.engine.keys import BadKey
from reconciliation.ledger.record import apply_reading, heal
from reconciliation.ledger.transition import Actor
from reconciliation.models import (
    KEY_HOLDING_STATUSES,
    Finding,
    Mismatch,
    ReconciliationJob,
    TableMapping,
)
from reconciliation.registry import ensure_key_columns, get_mapping


def _ignore(difference: Difference) -> None:
    return None


def engine_for(
    mapping: TableMapping,
    options: Options | None = None,
    report: Report = _ignore,
    progress: Progress | None = None,
    session: Session | None = None,
) -> Engine:

    # Probed (and rebuilt once if broken) first; transient errors are then retried per
    # statement, i.e. per token segment or page, and a read-rate cap backs off on them.
    options = options or Options(consistency=consistency_level())
    caps = options.source_limiter
    on_transient = caps.on_transient if caps is not None else None
    session = session or cast(
        Session, ResilientSession(healthy_cassandra_session(), on_transient=on_transient)
    )
    ensure_key_columns(mapping, session)
    if progress is None:
        return Engine(mapping.spec, session, target_connection, options, report)
    return Engine(mapping.spec, session, target_connection, options, report, progress)


def compare_now(engine: Engine, keys: Sequence[str]) -> dict[str, KeyReading]:
    """Each key's rows read now from both stores and compared by the engine
    (``Engine.read_keys``: the jobs' own lookups and key equality); keys that are not valid
    for the table are left out."""
    valid: dict[str, bytes] = {}
    for key in keys:
        try:
            valid[key] = engine.key_bytes_of(key)
        except BadKey:
            continue
    readings = engine.read_keys(list(valid.values()))
    return dict(zip(valid, readings, strict=True))


def recheck(mismatch: Mismatch, user: Any) -> str:
    """Re-read a mismatch's key from both stores now and act on it
    (``record.apply_reading``): the API's and the admin's *re-check now*.  A difference
    whose source row was written again within the table's CDC lag budget is in flight (the
    jobs' rule, ``lag_verdict``); the write it had before already had its budget."""
    finding = read_now(mismatch.table_name, mismatch.primary_key_value)
    if finding is not None and finding.source_write_time is not None:
        mapping = TableMapping.objects.filter(name=mismatch.table_name).first()
        budget = mapping.lag_budget_seconds if mapping is not None else 0.0
        now = time.time()
        expires = None if finding.source_ttl is None else now + finding.source_ttl
        # The stored write already had its budget, unless it is in flight and not due yet.
        due = mismatch.recheck_after is None or mismatch.recheck_after.timestamp() <= now
        stored = mismatch.source_write_time if due or not mismatch.is_in_flight else None
        verdict = lag_verdict(
            finding.mismatch_type,
            (finding.source_write_time, expires),
            now=now,
            budget=budget,
            reads_began_at=now,
            waited_for=None if stored is None else _micros(stored),
        )
        if verdict.recheck_after is not None:
            finding = dataclasses.replace(finding, recheck_after=verdict.recheck_after)
    return apply_reading(mismatch, finding, Actor.recheck(user))


def _micros(value: dt.datetime) -> int:
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def read_now(table_name: str, primary_key_value: str) -> Finding | None:
    """The key's difference as it stands now, or None when both stores agree."""
    engine = engine_for(get_mapping(table_name))
    found = compare_now(engine, [primary_key_value]).get(primary_key_value)
    if found is None:
        raise BadKey(f"{primary_key_value!r} is not a key of table {table_name!r}.")
    return found.difference


# -- coverage ----------------------------------------------------------------------------------


def heal_covered(job: ReconciliationJob, engine: Engine, outcome: Outcome) -> int:
    """Close the open differences ``job`` covered and did not find; returns how many."""
    if not outcome.keys_examined:
        return 0
    strategy = job.validation_strategy
    if strategy == ValidationStrategy.CHECKSUM:
        return heal(job)
    if strategy == ValidationStrategy.SAMPLE:
        # A random sample covers the keys it drew; a table no larger than the sample was
        # examined whole (examined_keys is None).
        if outcome.examined_keys is not None:
            return heal(job, outcome.examined_keys)
        return heal(job)
    if strategy == ValidationStrategy.TIMESTAMP_RANGE:
        return heal(job, _in_window_and_equal(job, engine, outcome))
    return 0


def _in_window_and_equal(job: ReconciliationJob, engine: Engine, outcome: Outcome) -> list[str]:
    window = {**(job.parameters or {}), **outcome.parameters}
    start, end = _time(window.get("from")), _time(window.get("to"))
    column = engine.spec.timestamp_column
    candidates = list(
        Mismatch.objects.filter(
            table_name=job.table_name, resolution_status__in=KEY_HOLDING_STATUSES
        )
        .exclude(last_job=job)
        .values_list("primary_key_value", flat=True)
    )
    covered = []
    for key, now in compare_now(engine, candidates).items():
        if now.difference is not None:
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
