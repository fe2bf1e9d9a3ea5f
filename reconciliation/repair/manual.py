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
tables' repair policies (``reconciliation.repair.policy``).  The SQL on the target row is in
``target_rows``, the audit entry in ``audit``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from cassandra import DriverException
from cassandra.cluster import NoHostAvailable, Session
from django.db import transaction

from gdpr.models import AuditLogEntry, StoreStatus
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
from reconciliation.repair.audit import Progress, audit_attempt
from reconciliation.repair.source_changes import (
    SchemaProblem,
    canonical_source_row,
    column_types,
    source_changes,
)
from reconciliation.repair.target_rows import (
    Row,
    compared_columns,
    delete_target_row,
    lock_target_row,
    target_column_types,
    upsert_target_row,
)
from reconciliation.repair.target_values import CannotConvert, to_target

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
    progress = Progress()
    entry = audit_attempt(mapping, current, user, progress, context, entry=None)
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
        audit_attempt(mapping, locked, user, progress, context, entry=entry)
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


# --------------------------------------------------------------------------------------
# Reading the source and writing the target


def _repair_in_stores(
    mapping: TableMapping, mismatch: Mismatch, progress: Progress, refuse_source_changes: bool
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
            progress.before = lock_target_row(conn, mapping, target_key)
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
                progress.after = upsert_target_row(conn, mapping, values)
                progress.action = "upserted"
                progress.postgres_status = StoreStatus.SUCCESS
            else:
                deleted = delete_target_row(conn, mapping, target_key)
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


def _session(progress: Progress) -> Session:
    try:
        return cassandra_session()
    except StoreUnavailable as exc:
        progress.cassandra_status, progress.cassandra_error = StoreStatus.FAILED, str(exc)
        raise RepairFailed("cassandra_unavailable", str(exc)) from exc


def _cassandra_failed(progress: Progress, exc: Exception) -> RepairFailed:
    message = f"Reading from Cassandra failed: {exc}"
    progress.cassandra_status, progress.cassandra_error = StoreStatus.FAILED, message
    return RepairFailed("cassandra_unavailable", message)


def _read_source_row(
    session: Session, mapping: TableMapping, key_values: Sequence[Any], progress: Progress
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


def _note(mismatch: Mismatch, progress: Progress, columns: Sequence[str], target: str) -> str:
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
