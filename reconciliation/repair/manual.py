"""Repair one mismatch from the source of truth, Cassandra.

The only code in cdcrecon that writes to the reconciled stores (besides GDPR erasure).  The
row is read from Cassandra *now*, not taken from what the job captured:

* the row exists in Cassandra → upsert it into the target table
  (``INSERT … ON CONFLICT (key) DO UPDATE``), columns matched by name (the columns both sides
  have, minus the mapping's excluded columns), each value converted to the target column's
  type (``information_schema.columns``);
* the row is absent from Cassandra → delete the target row (for MISSING_IN_CASSANDRA this is
  the confirming second read the repair needs before it deletes anything).

When the source row changed since the job detected the mismatch, what is there now is
written and the note says so (a repair policy asks instead to refuse: ``source_changed``).
A successful repair closes the mismatch as AUTO_RESOLVED (by hand) or AUTO_REPAIRED (by a
policy) through ``Mismatch.resolve``, with a note saying what was written; every attempt
leaves an ``AuditLogEntry`` (action REPAIR), written before the stores are touched and
completed after, with the target row before and after and each changed column.  A failed
repair raises ``RepairFailed`` and leaves the mismatch PENDING.

Used by the admin action, by ``POST /reconciliation/mismatches/{id}/repair`` and by the
tables' repair policies (``reconciliation.repair.policy``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from cassandra import DriverException
from cassandra.cluster import NoHostAvailable, Session
from django.db import transaction
from django.utils import timezone
from psycopg import sql
from psycopg.rows import dict_row

from gdpr.models import AuditAction, AuditLogEntry, StoreStatus
from reconciliation.choices import MismatchType, ResolutionStatus
from reconciliation.connections import (
    StoreUnavailable,
    cassandra_session,
    consistency_level,
    target_connection,
)
from reconciliation.engine import Options, StoredKeys, stored_keys
from reconciliation.engine.identifiers import UnsafeIdentifier, cql_column, cql_table
from reconciliation.engine.keys import BadKey
from reconciliation.engine.schema import is_excluded
from reconciliation.keyparse import parse_key_for_columns
from reconciliation.ledger.transition import Actor
from reconciliation.models import AlreadyResolved, Mismatch, TableMapping
from reconciliation.registry import (
    TableNotFound,
    UnknownTable,
    cassandra_column_types,
    ensure_key_columns,
    get_mapping,
)
from reconciliation.repair.source_changes import (
    SchemaProblem,
    canonical_source_row,
    column_types,
    source_changes,
)
from reconciliation.repair.target_values import (
    CannotConvert,
    TargetColumn,
    to_json,
    to_target,
)

Row = dict[str, Any]
logger = logging.getLogger(__name__)


class RepairFailed(Exception):
    """Nothing was repaired; the mismatch is still PENDING.  ``code`` says why (the API maps
    it to an HTTP status: ``reconciliation.api.repair``)."""

    def __init__(self, code: str, detail: str, fields: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.fields = fields or {}


@dataclass(frozen=True)
class RepairResult:
    mismatch: Mismatch
    action: str  # "upserted", "deleted" or "already_absent"
    note: str
    changed_columns: list[str] | None  # None: the source row did not change since detection
    before: Row | None
    after: Row | None
    audit_entry: AuditLogEntry


@dataclass
class _Progress:
    """How far an attempt got, for the audit entry (also written when it fails)."""

    started_at: dt.datetime = field(default_factory=timezone.now)
    cassandra_status: str = StoreStatus.PENDING
    cassandra_error: str = ""
    postgres_status: str = StoreStatus.SKIPPED
    postgres_error: str = ""
    before: Row | None = None
    after: Row | None = None
    action: str = ""
    changed_columns: list[str] | None = None
    note: str = ""


# --------------------------------------------------------------------------------------
# The entry point


def repair_mismatch(
    mismatch: Mismatch,
    user: Any,
    *,
    status: str = ResolutionStatus.AUTO_RESOLVED,
    refuse_source_changes: bool = False,
    context: Mapping[str, Any] | None = None,
    on_repaired: Callable[[Mismatch, AuditLogEntry, str], None] | None = None,
    actor: Actor | None = None,
) -> RepairResult:
    """Make the target row equal to the Cassandra row now, and close the mismatch as
    ``status`` (AUTO_RESOLVED by hand, AUTO_REPAIRED by a table's repair policy).

    The audit entry is written first, in its own transaction, and completed at the end: a
    process killed between the target's commit and the app database's still leaves the
    attempt audited (its statuses PENDING) and the mismatch open.  The mismatch row is
    locked for the duration, so two operators repairing (or one repairing while another
    resolves) the same mismatch cannot both act: the second sees who closed it first.
    ``refuse_source_changes``: fail with ``source_changed`` instead of writing when the
    source row is not what the job captured (a policy leaves such rows for its next run).
    ``context`` is added to the audit entry's details (the policy, the job);
    ``on_repaired(mismatch, audit entry, note)`` runs in the transaction that closes the
    mismatch (a policy records its action there, so a kill cannot part the two).
    """
    current = Mismatch.objects.get(pk=mismatch.pk)
    if current.resolution_status != ResolutionStatus.PENDING:
        raise RepairFailed("already_resolved", str(AlreadyResolved(current)))
    mapping = _mapping_for(current)
    progress = _Progress()
    entry = _audit(mapping, current, user, progress, context, entry=None)
    failure: RepairFailed | None = None
    with transaction.atomic():
        locked = Mismatch.objects.select_for_update().get(pk=mismatch.pk)
        try:
            if locked.resolution_status != ResolutionStatus.PENDING:
                progress.action = "not_attempted"
                raise RepairFailed("already_resolved", str(AlreadyResolved(locked)))
            _repair_in_stores(mapping, locked, progress, refuse_source_changes)
        except RepairFailed as exc:
            failure = exc
        else:
            locked.close(actor or Actor.operator(user), status, progress.note)
        _audit(mapping, locked, user, progress, context, entry=entry)
        if failure is None and on_repaired is not None:
            on_repaired(locked, entry, progress.note)
    if failure is not None:
        raise failure
    for name in ("resolution_status", "resolution_notes", "resolved_at", "resolved_by"):
        setattr(mismatch, name, getattr(locked, name))
    return RepairResult(
        mismatch=mismatch,
        action=progress.action,
        note=progress.note,
        changed_columns=progress.changed_columns,
        before=progress.before,
        after=progress.after,
        audit_entry=entry,
    )


def _mapping_for(mismatch: Mismatch) -> TableMapping:
    try:
        return get_mapping(mismatch.table_name)
    except UnknownTable as exc:
        raise RepairFailed(
            "table_not_registered",
            f"Cannot repair: {exc}",
            {"table_name": [f"{mismatch.table_name!r} is no longer registered."]},
        ) from exc


def _audit(
    mapping: TableMapping,
    mismatch: Mismatch,
    user: Any,
    progress: _Progress,
    context: Mapping[str, Any] | None,
    entry: AuditLogEntry | None,
) -> AuditLogEntry:
    """Write the attempt's audit entry (``entry`` None: the attempt is starting) or
    complete it."""
    details: dict[str, Any] = {
        "before": progress.before,
        "after": progress.after,
        "columns": column_changes(progress.before, progress.after),
        "mismatch_id": str(mismatch.mismatch_id),
        "mismatch_type": mismatch.mismatch_type,
        "target": f"{mapping.postgres_schema}.{mapping.postgres_table}",
        "action": progress.action or ("started" if entry is None else "failed"),
        "source_changed_columns": progress.changed_columns,
        **(context or {}),
    }
    fields: dict[str, Any] = {
        "completed_at": None if entry is None else timezone.now(),
        "cassandra_status": progress.cassandra_status,
        "cassandra_error": progress.cassandra_error,
        "postgres_status": progress.postgres_status if entry is not None else StoreStatus.PENDING,
        "postgres_error": progress.postgres_error,
        "details": details,
    }
    if entry is None:
        return AuditLogEntry.objects.create(
            action=AuditAction.REPAIR,
            requester=_username(user),
            reason=f"repair of mismatch {mismatch.mismatch_id}",
            keyspace=mapping.cassandra_keyspace,
            table=mapping.cassandra_table,
            primary_key=mismatch.primary_key_value,
            requested_at=progress.started_at,
            **fields,
        )
    AuditLogEntry.objects.filter(pk=entry.pk).update(**fields)
    for name, value in fields.items():
        setattr(entry, name, value)
    return entry


def column_changes(before: Row | None, after: Row | None) -> dict[str, dict[str, Any]]:
    """The target row's columns a repair changed, each ``{"before": …, "after": …}`` (a
    column absent on one side is None there)."""
    old, new = before or {}, after or {}
    return {
        column: {"before": old.get(column), "after": new.get(column)}
        for column in [*old, *(c for c in new if c not in old)]
        if old.get(column) != new.get(column)
    }


def _username(user: Any) -> str:
    getter = getattr(user, "get_username", None)
    return str(getter()) if callable(getter) and getter() else "unknown"


# --------------------------------------------------------------------------------------
# Reading the source and writing the target


def _repair_in_stores(
    mapping: TableMapping, mismatch: Mismatch, progress: _Progress, refuse_source_changes: bool
) -> None:
    session = _session(progress)
    try:
        ensure_key_columns(mapping, session)
        cql_types = cassandra_column_types(
            session, mapping.cassandra_keyspace, mapping.cassandra_table
        )
    except TableNotFound as exc:
        progress.cassandra_status, progress.cassandra_error = StoreStatus.FAILED, str(exc)
        raise RepairFailed("table_not_found", str(exc)) from exc
    except (DriverException, NoHostAvailable) as exc:
        raise _cassandra_failed(progress, exc) from exc
    try:
        key_values = parse_key_for_columns(
            mismatch.primary_key_value, [(c, cql_types[c]) for c in mapping.key_columns]
        )
    except (BadKey, KeyError) as exc:
        progress.cassandra_status = StoreStatus.FAILED
        progress.cassandra_error = f"Bad primary key {mismatch.primary_key_value!r}: {exc}"
        raise RepairFailed(
            "bad_key", progress.cassandra_error, {"primary_key_value": [str(exc)]}
        ) from exc

    # The rows equal to the key under the engine's one key equality, as each store spells
    # its key (a decimal key Cassandra keeps as 1.10, a uuid the target keeps upper-case):
    # read and write those rows, never a second one spelt the canonical way.
    stored = stored_spellings(mapping, session, mismatch.primary_key_value)
    source_key = list(stored.cassandra[0]) if stored and stored.cassandra else key_values
    source_row = _read_source_row(session, mapping, source_key, progress)
    try:
        source_now = canonical_source_row(session, mapping, cql_types, source_row)
        types = column_types(session, mapping, cql_types)
    except (DriverException, NoHostAvailable) as exc:
        raise _cassandra_failed(progress, exc) from exc
    except SchemaProblem as exc:
        progress.cassandra_status, progress.cassandra_error = StoreStatus.FAILED, str(exc)
        raise RepairFailed("schema_mismatch", str(exc)) from exc
    target_name = f"{mapping.postgres_schema}.{mapping.postgres_table}"
    try:
        with target_connection() as conn:
            progress.postgres_status = StoreStatus.PENDING
            target_columns = target_column_types(conn, mapping)
            columns = compared_columns(mapping, cql_types, target_columns)
            target_key = [
                to_target(v, target_columns[c], types.get(c))
                for c, v in zip(mapping.key_columns, key_values, strict=True)
            ]
            target_stored = stored.postgres[0] if stored and stored.postgres else None
            target_key = list(target_stored) if target_stored is not None else target_key
            progress.before = _lock_target_row(conn, mapping, target_key)
            progress.changed_columns = source_changes(mismatch, source_now, columns)
            if refuse_source_changes and progress.changed_columns:
                progress.postgres_status = StoreStatus.SKIPPED
                raise RepairFailed(
                    "source_changed",
                    "The source row changed since detection (columns: "
                    f"{', '.join(progress.changed_columns)}); nothing was written.",
                )
            if source_row is not None:
                values = {
                    c: to_target(source_row.get(c), target_columns[c], types.get(c))
                    for c in columns
                }
                if target_stored is not None:  # update that row, not one spelt our way
                    values.update(zip(mapping.key_columns, target_stored, strict=True))
                progress.after = _upsert(conn, mapping, values)
                progress.action = "upserted"
                progress.postgres_status = StoreStatus.SUCCESS
            else:
                deleted = _delete(conn, mapping, target_key)
                progress.action = "deleted" if deleted else "already_absent"
                progress.postgres_status = StoreStatus.SUCCESS if deleted else StoreStatus.NOT_FOUND
            progress.note = _note(mismatch, progress, columns, target_name)
    except StoreUnavailable as exc:
        progress.postgres_status, progress.postgres_error = StoreStatus.FAILED, str(exc)
        raise RepairFailed("target_unavailable", str(exc)) from exc
    except CannotConvert as exc:
        progress.postgres_status, progress.postgres_error = StoreStatus.FAILED, str(exc)
        progress.after = None
        raise RepairFailed("cannot_convert", str(exc)) from exc
    except SchemaProblem as exc:
        progress.postgres_status, progress.postgres_error = StoreStatus.FAILED, str(exc)
        raise RepairFailed("schema_mismatch", str(exc)) from exc
    except psycopg.Error as exc:
        message = f"Writing to PostgreSQL table {target_name} failed: {exc}".strip()
        progress.postgres_status, progress.postgres_error = StoreStatus.FAILED, message
        progress.after, progress.action = None, ""
        raise RepairFailed("target_write_failed", message) from exc


def stored_spellings(mapping: TableMapping, session: Session, key_text: str) -> StoredKeys | None:
    """The key values of the rows equal to ``key_text`` under the engine's key equality, as
    each store keeps them (``engine.stored_keys``); None when the lookup fails (the caller
    then uses the canonical values)."""
    try:
        options = Options(consistency=consistency_level())
        return stored_keys(mapping.spec, session, target_connection, options, key_text)
    except Exception:  # a lookup aid only: never the reason a repair fails
        logger.warning("Looking up the stored keys of %r failed", key_text, exc_info=True)
        return None


def _session(progress: _Progress) -> Session:
    try:
        return cassandra_session()
    except StoreUnavailable as exc:
        progress.cassandra_status, progress.cassandra_error = StoreStatus.FAILED, str(exc)
        raise RepairFailed("cassandra_unavailable", str(exc)) from exc


def _cassandra_failed(progress: _Progress, exc: Exception) -> RepairFailed:
    message = f"Reading from Cassandra failed: {exc}"
    progress.cassandra_status, progress.cassandra_error = StoreStatus.FAILED, message
    return RepairFailed("cassandra_unavailable", message)


def _read_source_row(
    session: Session, mapping: TableMapping, key_values: Sequence[Any], progress: _Progress
) -> Row | None:
    try:
        where = " AND ".join(f"{cql_column(c)} = ?" for c in mapping.key_columns)
        statement = session.prepare(
            f"SELECT * FROM {cql_table(mapping.cassandra_keyspace, mapping.cassandra_table)} "
            f"WHERE {where}"
        )
        row = session.execute(statement, list(key_values)).one()
    except UnsafeIdentifier as exc:
        progress.cassandra_status, progress.cassandra_error = StoreStatus.FAILED, str(exc)
        raise RepairFailed("table_not_found", str(exc)) from exc
    except (DriverException, NoHostAvailable) as exc:
        raise _cassandra_failed(progress, exc) from exc
    progress.cassandra_status = StoreStatus.SUCCESS if row is not None else StoreStatus.NOT_FOUND
    return dict(row) if row is not None else None


def target_column_types(conn: psycopg.Connection, mapping: TableMapping) -> dict[str, TargetColumn]:
    rows = conn.execute(
        "SELECT column_name, data_type, udt_name FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (mapping.postgres_schema, mapping.postgres_table),
    ).fetchall()
    if not rows:
        raise SchemaProblem(
            f"PostgreSQL table {mapping.postgres_schema}.{mapping.postgres_table} does not exist."
        )
    return {name: TargetColumn(name, data_type, udt) for name, data_type, udt in rows}


def compared_columns(
    mapping: TableMapping, cql_types: Mapping[str, str], target_columns: Mapping[str, TargetColumn]
) -> list[str]:
    """The columns a repair writes: key columns first, then the shared, non-excluded ones."""
    missing_keys = [c for c in mapping.key_columns if c not in target_columns]
    if missing_keys:
        raise SchemaProblem(
            f"Key column(s) {', '.join(missing_keys)} missing in PostgreSQL table "
            f"{mapping.postgres_schema}.{mapping.postgres_table}."
        )
    excluded = list(mapping.excluded_columns or [])
    others = sorted(
        c
        for c in cql_types
        if c in target_columns and c not in mapping.key_columns and not is_excluded(c, excluded)
    )
    return [*mapping.key_columns, *others]


def _table(mapping: TableMapping) -> sql.Composable:
    return sql.Identifier(mapping.postgres_schema, mapping.postgres_table)


def _key_condition(mapping: TableMapping) -> sql.Composable:
    return sql.SQL(" AND ").join(
        sql.SQL("{} = %s").format(sql.Identifier(c)) for c in mapping.key_columns
    )


def _lock_target_row(conn: psycopg.Connection, mapping: TableMapping, key: list[Any]) -> Row | None:
    query = sql.SQL("SELECT * FROM {} WHERE {} FOR UPDATE").format(
        _table(mapping), _key_condition(mapping)
    )
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(query, key).fetchone()
    return to_json(row) if row is not None else None


def _upsert(conn: psycopg.Connection, mapping: TableMapping, values: dict[str, Any]) -> Row:
    columns = list(values)
    non_key = [c for c in columns if c not in mapping.key_columns] or mapping.key_columns
    query = sql.SQL(
        "INSERT INTO {table} ({columns}) VALUES ({values}) "
        "ON CONFLICT ({keys}) DO UPDATE SET {updates} RETURNING *"
    ).format(
        table=_table(mapping),
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        values=sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        keys=sql.SQL(", ").join(map(sql.Identifier, mapping.key_columns)),
        updates=sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in non_key
        ),
    )
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(query, list(values.values())).fetchone()
    assert row is not None  # RETURNING of an upsert always yields the row
    return to_json(row)


def _delete(conn: psycopg.Connection, mapping: TableMapping, key: list[Any]) -> bool:
    query = sql.SQL("DELETE FROM {} WHERE {}").format(_table(mapping), _key_condition(mapping))
    return conn.execute(query, key).rowcount > 0


def _note(mismatch: Mismatch, progress: _Progress, columns: Sequence[str], target: str) -> str:
    changed = progress.changed_columns
    if progress.action == "upserted":
        text = (
            f"Repaired from Cassandra: upserted the current source row into {target} "
            f"(columns written: {', '.join(columns)})."
        )
        if changed == ["(row created)"]:
            text += (
                " The row now exists in Cassandra (written since detection), so it was "
                "upserted instead of deleted."
            )
        elif changed:
            text += (
                " The source row changed since detection (columns: "
                f"{', '.join(changed)}); what Cassandra holds now was written."
            )
        return text
    if mismatch.mismatch_type == MismatchType.MISSING_IN_CASSANDRA:
        confirm = "Cassandra was read again and the row is still absent"
    else:
        confirm = (
            "The row no longer exists in Cassandra (deleted since detection), so the target "
            "row was deleted instead of written"
        )
    if progress.action == "deleted":
        return f"Repaired from Cassandra: deleted the row from {target}. {confirm}."
    return f"Repaired from Cassandra: nothing to write, the row is absent from {target} too. {confirm}."
