"""GDPR erasure (Art. 17): delete one row from Cassandra and the target, and say so in the audit log.

The order of work makes sure nothing is lost, whatever fails half-way:

1. the request is validated (registered table, key that fits the key columns:
   ``gdpr.record``) before anything is written, so a bad request leaves no trace in any store;
2. the audit entry is written first, PENDING, and committed;
3. the row is deleted from Cassandra (at a quorum consistency level), then from PostgreSQL,
   each step recorded on the entry as it finishes;
4. our own copies of the row (captured mismatch data, a repair's before/after rows on
   earlier audit entries) are scrubbed and the entry is completed.

Every step is idempotent, so repeating a request completes a partial erasure.  The view,
an admin action or a management command all call :func:`erase_record`.
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from cassandra import OperationTimedOut, ReadTimeout, Unavailable, WriteTimeout
from cassandra.cluster import NoHostAvailable
from django.utils import timezone
from psycopg import sql
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from cdcrecon.conf import settings
from gdpr.models import AuditAction, AuditLogEntry, StoreStatus
from gdpr.record import RecordKey, describe_error, postgres_column_types, resolve_key
from gdpr.redaction import redact_audit_details, scrub_mismatches
from reconciliation.connections import (
    StoreUnavailable,
    consistency_level,
    healthy_cassandra_session,
    target_connection,
)
from reconciliation.engine import Options, StoredKeys, stored_keys
from reconciliation.engine.identifiers import cql_column, cql_table
from reconciliation.models import TableMapping

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Errors worth a second try: the node or the network hiccuped, the request itself is fine.
CASSANDRA_TRANSIENT: tuple[type[BaseException], ...] = (
    StoreUnavailable,
    NoHostAvailable,
    OperationTimedOut,
    Unavailable,
    ReadTimeout,
    WriteTimeout,
)
POSTGRES_TRANSIENT: tuple[type[BaseException], ...] = (StoreUnavailable, psycopg.OperationalError)
RETRY_ATTEMPTS = 3

# An erasure must not be acknowledged by a single replica that may then be lost.
WEAK_CONSISTENCY_LEVELS = {"ONE", "LOCAL_ONE", "TWO"}


@dataclass(frozen=True)
class StoreResult:
    status: str
    error: str = ""


def erasure_consistency_level() -> int:
    """The configured consistency, raised to LOCAL_QUORUM when it is a single-replica level."""
    name = settings.cassandra.consistency
    return consistency_level("LOCAL_QUORUM" if name in WEAK_CONSISTENCY_LEVELS else name)


def _retrying(transient: tuple[type[BaseException], ...], action: Callable[[], T]) -> T:
    """Run ``action``, retrying transient store errors a few times over about a second."""
    for attempt in Retrying(
        stop=stop_after_attempt(RETRY_ATTEMPTS),
        wait=wait_exponential(multiplier=0.2, max=1),
        retry=retry_if_exception_type(transient),
        reraise=True,
    ):
        with attempt:
            return action()
    raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover


# --- the stores -------------------------------------------------------------------------------


_SCALARS = (str, int, float, bytes, decimal.Decimal, uuid.UUID, dt.date, dt.time)


def equal_keys(mapping: TableMapping, key: RecordKey, session: Any = None) -> Any:
    """Every row equal to ``key`` under the engine's one key equality, as each store spells
    its key (``engine.stored_keys``); none when the lookup fails (the canonical
    delete above it still runs)."""
    try:
        return stored_keys(
            mapping.spec,
            session or healthy_cassandra_session(),
            target_connection,
            Options(consistency=erasure_consistency_level()),
            key.text,
        )
    except Exception:  # a lookup aid only: never the reason an erasure fails
        logger.warning("Looking up equal keys for the erasure failed", exc_info=True)
        return StoredKeys([], [])


def delete_from_cassandra(mapping: TableMapping, key: RecordKey) -> StoreResult:
    """Delete the row at a quorum level; NOT_FOUND when a quorum read saw no such row."""
    found = False

    def attempt() -> None:
        nonlocal found
        session = healthy_cassandra_session()
        table = cql_table(mapping.cassandra_keyspace, mapping.cassandra_table)
        where = " AND ".join(f"{cql_column(column)} = ?" for column in key.columns)
        level = erasure_consistency_level()
        # Identifiers are checked and quoted by cql_table/cql_column; values are bound.
        select = session.prepare(
            f"SELECT {cql_column(key.columns[0])} FROM {table} WHERE {where} LIMIT 1"  # noqa: S608
        )
        select.consistency_level = level
        delete = session.prepare(f"DELETE FROM {table} WHERE {where}")  # noqa: S608
        delete.consistency_level = level
        found = found or session.execute(select, key.values).one() is not None
        # Delete even when the read saw nothing: a tombstone is harmless, a missed row is not.
        session.execute(delete, key.values)
        for other in equal_keys(mapping, key, session).cassandra:  # e.g. a decimal's 1.10
            found = True
            session.execute(delete, other)

    try:
        _retrying(CASSANDRA_TRANSIENT, attempt)
    except Exception as exc:
        logger.warning("GDPR erasure in Cassandra failed: %s", describe_error(exc))
        return StoreResult(StoreStatus.FAILED, describe_error(exc))
    return StoreResult(StoreStatus.SUCCESS if found else StoreStatus.NOT_FOUND)


def delete_from_postgres(mapping: TableMapping, key: RecordKey) -> StoreResult:
    """Delete the row from the target table; NOT_FOUND when no row had that key."""
    found = False

    def attempt() -> None:
        nonlocal found
        with target_connection() as conn:
            conn.execute("SET TIME ZONE 'UTC'")  # a `timestamp` key column is read as UTC
            types = postgres_column_types(conn, mapping)
            if not types:
                raise LookupError(
                    f"Target table {mapping.postgres_schema}.{mapping.postgres_table} "
                    "does not exist."
                )
            missing = [column for column in key.columns if column not in types]
            if missing:
                raise LookupError(
                    f"Key column {missing[0]!r} is missing on the target table "
                    f"{mapping.postgres_schema}.{mapping.postgres_table}."
                )
            # Canonical text bound as an untyped literal lets PostgreSQL read it as the
            # column's own type (a uuid key kept in a text column still matches); bytea
            # needs the bytes themselves.
            values = [
                value if types[column] == "bytea" else text
                for column, value, text in zip(key.columns, key.values, key.part_texts, strict=True)
            ]
            query = sql.SQL("DELETE FROM {}.{} WHERE {} RETURNING 1").format(
                sql.Identifier(mapping.postgres_schema),
                sql.Identifier(mapping.postgres_table),
                sql.SQL(" AND ").join(
                    sql.SQL("{} = %s").format(sql.Identifier(column)) for column in key.columns
                ),
            )
            deleted = conn.execute(query, values).fetchall()
            found = found or bool(deleted)
            for other in equal_keys(mapping, key).postgres:  # e.g. a uuid in upper case
                if all(isinstance(v, _SCALARS) for v in other):
                    found = bool(conn.execute(query, list(other)).fetchall()) or found

    try:
        _retrying(POSTGRES_TRANSIENT, attempt)
    except Exception as exc:
        logger.warning("GDPR erasure in PostgreSQL failed: %s", describe_error(exc))
        return StoreResult(StoreStatus.FAILED, describe_error(exc))
    return StoreResult(StoreStatus.SUCCESS if found else StoreStatus.NOT_FOUND)


# --- the whole erasure ------------------------------------------------------------------------


def is_complete_erasure(entry: AuditLogEntry) -> bool:
    """True when neither store holds the row any more (deleted now or already absent)."""
    done = {StoreStatus.SUCCESS, StoreStatus.NOT_FOUND}
    return entry.cassandra_status in done and entry.postgres_status in done


def _record(entry: AuditLogEntry, **fields: Any) -> None:
    """Update a PENDING entry (the audit trigger refuses to touch a completed one)."""
    AuditLogEntry.objects.filter(pk=entry.pk, completed_at__isnull=True).update(**fields)
    for name, value in fields.items():
        setattr(entry, name, value)


def erase_record(
    mapping: TableMapping, key_text: str, *, requester: str, reason: str
) -> AuditLogEntry:
    """Erase the row with primary key ``key_text`` from both stores; return its audit entry.

    Raises ``BadKey`` or ``UnknownRecordTable`` (nothing written anywhere) when the key does
    not fit the table or the table does not exist.  Store failures do not raise: they are
    recorded on the entry as FAILED with the error text.
    """
    reason = reason.strip()
    if not reason:
        raise ValueError("A reason is required for an erasure.")
    try:
        key: RecordKey | None = resolve_key(mapping, key_text)
        key_error = ""
    except StoreUnavailable as exc:  # neither store could give the key's types
        key, key_error = None, str(exc)

    # Written and committed before any store is touched: a crash leaves a PENDING entry.
    entry = AuditLogEntry.objects.create(
        action=AuditAction.ERASURE,
        requester=requester,
        reason=reason,
        keyspace=mapping.cassandra_keyspace,
        table=mapping.cassandra_table,
        primary_key=key.text if key else key_text,
    )

    if key is None:
        cassandra = StoreResult(StoreStatus.FAILED, key_error)
        postgres = StoreResult(StoreStatus.SKIPPED, "Not attempted: the key could not be checked.")
    else:
        cassandra = delete_from_cassandra(mapping, key)
        _record(entry, cassandra_status=cassandra.status, cassandra_error=cassandra.error)
        postgres = delete_from_postgres(mapping, key)

    key_texts = {key_text, entry.primary_key} - {""}
    scrubbed = scrub_mismatches(mapping, key_texts, entry)
    redacted = redact_audit_details(mapping, key_texts, entry)
    _record(
        entry,
        cassandra_status=cassandra.status,
        cassandra_error=cassandra.error,
        postgres_status=postgres.status,
        postgres_error=postgres.error,
        details={
            "table_name": mapping.name,
            "postgres_table": f"{mapping.postgres_schema}.{mapping.postgres_table}",
            "mismatches_scrubbed": scrubbed,
            "audit_entries_redacted": redacted,
        },
        completed_at=timezone.now(),
    )
    return entry
