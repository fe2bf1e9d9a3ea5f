"""What runs and re-checks write into the ledger: findings (``record_findings``, ``see``), rows
found equal (``heal``) and a key read again now (``apply_reading``).

Each status is decided by ``statuses.after_finding`` and each move recorded in the history
(``transition.write_events`` for a batch, ``transition.transition`` for one row).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.db import connection, models, transaction
from django.utils import timezone
from psycopg import sql
from psycopg.types.json import Jsonb

from reconciliation.arrivals import arrival_seconds
from reconciliation.ledger.statuses import (
    AUTO_RESOLVED,
    IGNORED,
    IN_FLIGHT,
    KEY_HOLDING_STATUSES,
    REAPPEARED,
    REOPENED,
    after_finding,
    check,
)
from reconciliation.ledger.transition import Actor, Event, transition, write_events
from reconciliation.models import Finding, JobFinding, Mismatch, ReconciliationJob
from reconciliation.models.history import MismatchEvent
from reconciliation.models.mismatches import LEDGER_WRITE_FIELDS

#: Why a finding moved a difference (its history event's reason).
_REASONS = {
    "new": "Found by {source}.",
    "seen": "Found again by {source}.",
    "reopened": "Reopened: the rows changed since it was ignored ({source}).",
    "reappeared": "Reappeared after resolution: found again by {source}.",
    "still_ignored": "Found again by {source}, as it was when ignored.",
}


def _from_micros(micros: int | None) -> dt.datetime | None:
    """A Cassandra write time (µs since the epoch) as a datetime; None when out of range."""
    if micros is None:
        return None
    try:
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)
    except OverflowError:  # USING TIMESTAMP accepts any bigint
        return None


def see(mismatch: Mismatch, finding: Finding, job: ReconciliationJob | None, now: Any) -> Event:
    """The difference was found (again) as ``finding``: decide its status and refresh it, in
    memory (``statuses.after_finding``).  Returns the move, for the history.

    ``recheck_after`` stays set on a row closed while in flight (it never was drift) and is
    cleared whenever the row becomes PENDING.
    """
    new = mismatch.times_seen == 0 or mismatch._state.adding
    old = None if new else mismatch.resolution_status
    same_rows = (finding.cassandra_checksum, finding.postgres_checksum) == (
        mismatch.cassandra_checksum,
        mismatch.postgres_checksum,
    )
    status, outcome = after_finding(
        old, same_rows=same_rows, in_flight=finding.recheck_after is not None
    )
    if outcome == REAPPEARED:
        mismatch.reappeared_at = now
    if outcome in (REOPENED, REAPPEARED):
        mismatch.resolved_at = None
        mismatch.resolved_by = None
    if status != IGNORED:
        mismatch.mismatch_type = finding.mismatch_type
        mismatch.cassandra_checksum = finding.cassandra_checksum
        mismatch.postgres_checksum = finding.postgres_checksum
        mismatch.cassandra_data = finding.cassandra_data
        mismatch.postgres_data = finding.postgres_data
        mismatch.source_write_time = _from_micros(finding.source_write_time)
        mismatch.source_ttl_seconds = finding.source_ttl
        if finding.recheck_after is not None:
            mismatch.recheck_after = dt.datetime.fromtimestamp(finding.recheck_after, dt.UTC)
        else:
            mismatch.recheck_after = None
    mismatch.resolution_status = status
    mismatch.times_seen = (mismatch.times_seen or 0) + 1
    mismatch.last_seen_at = now
    if job is not None:
        mismatch.last_job = job
    source = f"{job.validation_strategy} job {job.job_id}" if job is not None else "a re-check"
    return Event(mismatch.mismatch_id, old, status, _REASONS[outcome].format(source=source))


def record_findings(job: ReconciliationJob, findings: list[Finding]) -> int:
    """Apply one batch of a job's findings to the ledger, in a few queries.

    Per key: the open difference is refreshed (``see``); else the latest resolved one
    reopens; else a new one is added.  The rows are written with one ``INSERT … ON CONFLICT
    (mismatch_id) DO UPDATE``, each key gets a ``JobFinding`` and each move an event.
    Returns how many findings were applied.
    """
    if not findings:
        return 0
    now = timezone.now()
    by_key = {f.primary_key_value: f for f in findings}
    with transaction.atomic():
        known: dict[str, Mismatch] = {}
        # Open rows first, then the most recently seen resolved one (NULLs last).
        existing = (
            Mismatch.objects.select_for_update()
            .filter(table_name=job.table_name, primary_key_value__in=list(by_key))
            .order_by("primary_key_value", "-last_seen_at")
        )
        for row in existing:
            current = known.get(row.primary_key_value)
            if current is None or (row.holds_key and not current.holds_key):
                known[row.primary_key_value] = row  # an open (or in-flight) row wins
        rows: list[Mismatch] = []
        events: list[Event] = []
        for key, finding in by_key.items():
            mismatch = known.get(key)
            if mismatch is None:
                mismatch = Mismatch(
                    job=job,
                    table_name=job.table_name,
                    primary_key_value=key,
                    detected_at=now,
                    first_seen_at=now,
                    times_seen=0,
                )
            events.append(see(mismatch, finding, job, now))
            rows.append(mismatch)
        _upsert(rows, job, now)
        write_events(MismatchEvent._meta.db_table, events, Actor.run(job), now)
    return len(rows)


def _upsert(rows: list[Mismatch], job: ReconciliationJob, now: Any) -> None:
    """Write the decided rows and their findings: COPY into a temporary table, then one
    ``INSERT … ON CONFLICT (mismatch_id) DO UPDATE`` and one ``INSERT`` of the findings.
    (About twice as fast as ``bulk_create`` for a thousand rows with JSON.)"""
    fields = list(Mismatch._meta.concrete_fields)
    column = {f.name: str(f.column) for f in fields}
    table = sql.Identifier(Mismatch._meta.db_table)
    batch = sql.Identifier(f"ledger_batch_{uuid.uuid4().hex}")
    names = sql.SQL(", ").join([sql.Identifier(column[f.name]) for f in fields])
    updates = sql.SQL(", ").join(
        [
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(column[n]))
            for n in LEDGER_WRITE_FIELDS
        ]
    )
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's own cursor, for COPY
        raw.execute(
            sql.SQL("CREATE TEMPORARY TABLE {} (LIKE {}) ON COMMIT DROP").format(batch, table)
        )
        # Plain attribute values (psycopg adapts UUIDs, datetimes, text, numbers), JSON
        # wrapped as jsonb: Field.get_db_prep_save per value would double the cost.
        attnames = [(f.attname, isinstance(f, models.JSONField)) for f in fields]
        with raw.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(batch, names)) as copy:
            for row in rows:
                values = row.__dict__
                copy.write_row(
                    [
                        Jsonb(values[name])
                        if is_json and values[name] is not None
                        else values[name]
                        for name, is_json in attnames
                    ]
                )
        raw.execute(
            sql.SQL(
                "INSERT INTO {table} ({names}) SELECT {names} FROM {batch} "
                "ON CONFLICT ({pk}) DO UPDATE SET {updates}"
            ).format(
                table=table,
                names=names,
                batch=batch,
                pk=sql.Identifier(column["mismatch_id"]),
                updates=updates,
            )
        )
        raw.execute(
            sql.SQL(
                "INSERT INTO {findings} (job_id, mismatch_id, mismatch_type, found_at) "
                "SELECT %s, mismatch_id, mismatch_type, %s FROM {batch} ON CONFLICT DO NOTHING"
            ).format(findings=sql.Identifier(JobFinding._meta.db_table), batch=batch),
            [job.pk, now],
        )
        raw.execute(sql.SQL("DROP TABLE {}").format(batch))


def heal(job: ReconciliationJob, keys: list[str] | None = None) -> int:
    """Close as AUTO_RESOLVED the differences of ``job``'s table that are not closed, that
    ``job`` covered (every key when ``keys`` is None) and did not find: it saw their rows
    equal.  One statement per batch closes them and records their events.  Returns how
    many were closed."""
    actor = Actor.run(job)
    reason = f"Healed: {actor.name} found the rows equal."
    now = timezone.now()
    closed = 0
    for batch in (
        [None] if keys is None else [keys[i : i + 1000] for i in range(0, len(keys), 1000)]
    ):
        closed += _close_equal(job, batch, actor, reason, now)
    return closed


def _close_equal(
    job: ReconciliationJob, keys: list[str] | None, actor: Actor, reason: str, now: Any
) -> int:
    for old in KEY_HOLDING_STATUSES:  # every move this makes is in the transition table
        check(old, AUTO_RESOLVED, actor.kind)
    table = sql.Identifier(Mismatch._meta.db_table)
    history = sql.Identifier(MismatchEvent._meta.db_table)
    by_key = sql.SQL("AND primary_key_value = ANY(%(keys)s)") if keys is not None else sql.SQL("")
    statement = sql.SQL(
        """
        WITH due AS (
            SELECT mismatch_id, resolution_status FROM {table}
            WHERE table_name = %(table)s AND resolution_status = ANY(%(holding)s)
              AND last_job_id IS DISTINCT FROM %(job)s {by_key}
            FOR UPDATE
        ), closed AS (
            UPDATE {table} AS m
            SET resolution_status = %(closed)s, resolved_at = %(now)s, resolved_by_id = NULL
            FROM due WHERE m.mismatch_id = due.mismatch_id
            RETURNING m.mismatch_id, due.resolution_status AS was, m.source_write_time
        )
        INSERT INTO {history} (mismatch_id, from_status, to_status, at, actor_kind, actor,
                               job_id, reason, arrival_seconds)
        SELECT mismatch_id, was, %(closed)s, %(now)s, %(kind)s, %(actor)s, %(job)s, %(reason)s,
               -- an in-flight difference found equal arrived (``arrivals``)
               CASE WHEN was = %(in_flight)s THEN
                   GREATEST(0, EXTRACT(EPOCH FROM %(now)s - source_write_time))::float8
               END
        FROM closed
        """
    ).format(table=table, history=history, by_key=by_key)
    with connection.cursor() as cursor:
        cursor.cursor.execute(
            statement,
            {
                "table": job.table_name,
                "holding": [str(s) for s in KEY_HOLDING_STATUSES],
                "job": job.pk,
                "keys": keys,
                "closed": str(AUTO_RESOLVED),
                "in_flight": str(IN_FLIGHT),
                "now": now,
                "kind": actor.kind,
                "actor": actor.name,
                "reason": reason,
            },
        )
        return int(cursor.cursor.rowcount)


def refresh(mismatch: Mismatch, finding: Finding, actor: Actor, now: Any, prefix: str) -> str:
    """A re-check still sees ``finding``: refresh the row (``see``) and record its move, if
    any, with a reason starting with ``prefix``.  Returns its status now."""
    old = mismatch.resolution_status
    same = (finding.cassandra_checksum, finding.postgres_checksum) == (
        mismatch.cassandra_checksum,
        mismatch.postgres_checksum,
    )
    see(mismatch, finding, None, now)
    new = mismatch.resolution_status
    fields = {name: getattr(mismatch, name) for name in LEDGER_WRITE_FIELDS}
    del fields["resolution_status"]
    why = "still different." if same else "still different, the rows changed."
    transition(
        mismatch, new, actor=actor, reason=prefix + why, fields=fields, now=now, from_status=old
    )
    return str(new)


def apply_reading(mismatch: Mismatch, finding: Finding | None, actor: Actor) -> str:
    """Act on this key as a re-check just read it (``finding``: its difference now, None when
    both stores agree; ``ledger.reads`` reads it).

    Equal now: a difference that is not closed closes as AUTO_RESOLVED ("closed"; a closed
    one stays closed).  Still different: the captured rows are refreshed through ``see``
    (an IGNORED one stays ignored while its rows are as they were; a resolved one reopens)
    and the outcome is "still_different" when the checksums are as captured, else
    "changed".  The history names ``actor``.
    """
    now = timezone.now()
    with transaction.atomic():
        locked = Mismatch.objects.select_for_update().get(pk=mismatch.pk)
        if finding is None:
            outcome = "closed"
            if locked.holds_key:
                arrived = locked.resolution_status == IN_FLIGHT  # the copy came (``arrivals``)
                transition(
                    locked,
                    AUTO_RESOLVED,
                    actor=actor,
                    reason=f"Re-checked by {actor.name}: the rows are equal now; closed.",
                    fields={"resolved_at": now, "resolved_by": actor.user},
                    now=now,
                    event={
                        "arrival_seconds": arrival_seconds(locked.source_write_time, now)
                        if arrived
                        else None
                    },
                )
        else:
            same = (finding.cassandra_checksum, finding.postgres_checksum) == (
                locked.cassandra_checksum,
                locked.postgres_checksum,
            )
            outcome = "still_different" if same else "changed"
            refresh(locked, finding, actor, now, f"Re-checked by {actor.name}: ")
    for name in (*LEDGER_WRITE_FIELDS, "resolved_by_id"):
        setattr(mismatch, name, getattr(locked, name))
    return outcome
