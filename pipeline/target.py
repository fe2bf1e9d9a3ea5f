"""The sink's PostgreSQL side: how a change event becomes a write to its target table.

``Writer`` applies a Kafka batch of decoded events (``pipeline.events``) in one PostgreSQL
transaction: upserts by primary key for inserts and updates (only the columns the mutation
touched), deletes by key for row deletes, each guarded by the row's ``_cdc_write_ts`` so a
replay never goes back in time.  ``describe_table`` reads a target table's columns and key
from the catalog; ``ensure_bookkeeping`` adds the ``_cdc_*`` columns and the trigger that
stamps other writers' rows.  The Kafka side (subscription, batches, offsets) and the
guarantees the two sides give together are ``pipeline.sink``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from pipeline.events import ChangeEvent, to_postgres

log = logging.getLogger("pipeline.sink")  # the sink's log, whichever module writes the line

WRITE_TS = "_cdc_write_ts"
EXPIRES_AT = "_cdc_expires_at"
OPERATION = "_cdc_operation"
INGESTED_AT = "_cdc_ingested_at"
SINK_SETTING = "cdcrecon.sink"  # set 'on' on the sink's own connection; the trigger reads it
_OPERATIONS = {"i": "INSERT", "u": "UPDATE", "d": "DELETE"}


@dataclass
class TargetTable:
    """A target table's columns (name -> (data_type, array element type)) and primary key."""

    name: str
    columns: dict[str, tuple[str, str | None]]
    key: list[str]
    unknown_logged: set[str] = field(default_factory=set)


def describe_table(conn: psycopg.Connection, schema: str, table: str) -> TargetTable | None:
    """The target table's columns and primary key from the catalog; None if there is none."""
    rows = conn.execute(
        """SELECT c.column_name, c.data_type, e.data_type
             FROM information_schema.columns c
             LEFT JOIN information_schema.element_types e
               ON e.object_catalog = c.table_catalog AND e.object_schema = c.table_schema
              AND e.object_name = c.table_name AND e.object_type = 'TABLE'
              AND e.collection_type_identifier = c.dtd_identifier
            WHERE c.table_schema = %s AND c.table_name = %s""",
        (schema, table),
    ).fetchall()
    if not rows:
        return None
    key = [
        r[0]
        for r in conn.execute(
            """SELECT a.attname FROM pg_index i
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                WHERE i.indrelid = %s::regclass AND i.indisprimary
                ORDER BY array_position(i.indkey, a.attnum)""",
            (sql.Identifier(schema, table).as_string(conn),),
        )
    ]
    if not key:
        raise RuntimeError(f"target table {schema}.{table} has no primary key to upsert by")
    return TargetTable(table, {r[0]: (r[1], r[2]) for r in rows}, key)


def ensure_bookkeeping(conn: psycopg.Connection, schema: str, table: str) -> None:
    """Add the sink's ``_cdc_*`` columns and the trigger that stamps other writers' rows."""
    name = sql.Identifier(schema, table)
    function = sql.Identifier(schema, "_cdc_stamp_foreign_write")
    with conn.transaction():
        conn.execute(
            sql.SQL(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} bigint, "
                "ADD COLUMN IF NOT EXISTS {} timestamptz"
            ).format(name, sql.Identifier(WRITE_TS), sql.Identifier(EXPIRES_AT))
        )
        conn.execute(
            sql.SQL(
                "CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF coalesce(current_setting({}, true), '') <> 'on' THEN "
                "NEW._cdc_write_ts := (extract(epoch FROM clock_timestamp()) * 1000000)::bigint; "
                "END IF; RETURN NEW; END $$"
            ).format(function, sql.Literal(SINK_SETTING))
        )
        conn.execute(
            sql.SQL(
                "CREATE OR REPLACE TRIGGER {} BEFORE INSERT OR UPDATE ON {} "
                "FOR EACH ROW EXECUTE FUNCTION {}()"
            ).format(sql.Identifier("_cdc_stamp_foreign_write"), name, function)
        )


def _corrupted(value: Any) -> Any:
    """The test hook's alteration of one value (a transform bug, on purpose)."""
    if isinstance(value, str):
        return value + "~"
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, decimal.Decimal, float)):
        return value + 1
    return value


def _adapt(value: Any) -> Any:
    if isinstance(value, tuple) and len(value) == 2 and value[0] == "json":
        return Jsonb(value[1])
    return value


class Writer:
    """Applies change events to the target, one PostgreSQL transaction per Kafka batch."""

    def __init__(
        self, conn: psycopg.Connection, schema: str, corrupt: tuple[str, str] | None = None
    ) -> None:
        self.conn = conn
        self.schema = schema
        self.corrupt = corrupt  # (table, column): the sink's test hook (``pipeline.sink``)
        self.tables: dict[str, TargetTable | None] = {}
        self.missing_since: dict[str, float] = {}
        conn.execute(sql.SQL("SET {} = 'on'").format(sql.Identifier(*SINK_SETTING.split("."))))

    def table(self, name: str, refresh: bool = False) -> TargetTable | None:
        if name in self.missing_since and time.monotonic() - self.missing_since[name] > 5:
            refresh = True  # a table the target lacked may have been created since
        if refresh or name not in self.tables:
            found = describe_table(self.conn, self.schema, name)
            if found is not None and (
                WRITE_TS not in found.columns or EXPIRES_AT not in found.columns
            ):
                ensure_bookkeeping(self.conn, self.schema, name)
                found = describe_table(self.conn, self.schema, name)
            if found is None and name not in self.tables:
                log.warning(
                    "sink: no table %s.%s in the target; its events are skipped",
                    self.schema,
                    name,
                )
            self.tables[name] = found
            if found is None:
                self.missing_since.setdefault(name, time.monotonic())
            else:
                self.missing_since.pop(name, None)
        return self.tables[name]

    def _value(self, table: TargetTable, column: str, raw: Any) -> Any:
        pg_type, element = table.columns[column]
        value = to_postgres(raw, pg_type, element)
        if self.corrupt == (table.name, column):
            value = _corrupted(value)
        return _adapt(value)

    def _columns_of(self, table: TargetTable, event: ChangeEvent) -> dict[str, Any]:
        """The target columns the event writes, with their values; unknown ones logged once."""
        values: dict[str, Any] = {}
        missing = [n for n in event.cells if n not in table.columns]
        if missing:
            table = self.table(table.name, refresh=True) or table
        for name, cell in event.cells.items():
            if name not in table.columns:
                if name not in table.unknown_logged:
                    log.warning("sink: %s has no column %s; it is not copied", table.name, name)
                    table.unknown_logged.add(name)
                continue
            values[name] = None if cell.deleted else self._value(table, name, cell.value)
        for name, raw in event.key.items():
            if name in table.columns:
                values[name] = self._value(table, name, raw)
        return values

    def apply(self, event: ChangeEvent) -> str:
        """Write one event; returns what happened (for the log and the tests)."""
        table = self.table(event.table)
        if table is None:
            return "skipped"
        if event.range_delete:
            log.warning("sink: range delete on %s is not copied: %s", table.name, event.key)
            return "skipped"
        if event.is_row_delete:
            return self._delete(table, event)
        return self._upsert(table, event)

    def _delete(self, table: TargetTable, event: ChangeEvent) -> str:
        key = {k: self._value(table, k, v) for k, v in event.key.items() if k in table.columns}
        if not key:
            return "skipped"
        where = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in key)
        statement = sql.SQL("DELETE FROM {} WHERE {} AND ({} IS NULL OR {} <= %s)").format(
            sql.Identifier(self.schema, table.name),
            where,
            sql.Identifier(WRITE_TS),
            sql.Identifier(WRITE_TS),
        )
        done = self.conn.execute(statement, [*key.values(), event.write_time_us])
        return "deleted" if done.rowcount else "stale"

    def _upsert(self, table: TargetTable, event: ChangeEvent) -> str:
        values = self._columns_of(table, event)
        if any(k not in values for k in table.key):
            log.warning("sink: event for %s lacks key columns: %s", table.name, event.key)
            return "skipped"
        expires = event.expires_at_us
        values[WRITE_TS] = event.write_time_us
        values[EXPIRES_AT] = (
            dt.datetime.fromtimestamp(expires / 1_000_000, dt.UTC) if expires is not None else None
        )
        if OPERATION in table.columns:
            values[OPERATION] = _OPERATIONS.get(event.op, event.op)
        if INGESTED_AT in table.columns:
            values[INGESTED_AT] = dt.datetime.now(dt.UTC)
        names = list(values)
        target = sql.Identifier(self.schema, table.name)
        updates = [n for n in names if n not in table.key]
        statement = sql.SQL(
            "INSERT INTO {t} AS t ({cols}) VALUES ({vals}) ON CONFLICT ({key}) DO UPDATE SET "
            "{sets} WHERE t.{ts} IS NULL OR t.{ts} <= EXCLUDED.{ts}"
        ).format(
            t=target,
            cols=sql.SQL(", ").join(map(sql.Identifier, names)),
            vals=sql.SQL(", ").join(sql.Placeholder() for _ in names),
            key=sql.SQL(", ").join(map(sql.Identifier, table.key)),
            sets=sql.SQL(", ").join(
                sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(n), sql.Identifier(n))
                for n in updates
            ),
            ts=sql.Identifier(WRITE_TS),
        )
        done = self.conn.execute(statement, list(values.values()))
        # 0 rows: the row holds a newer write (a replay, or a repair after this mutation).
        return "upserted" if done.rowcount else "stale"

    def apply_batch(self, events: Sequence[ChangeEvent]) -> dict[str, int]:
        """All events in one transaction: either the whole batch is in PostgreSQL or none.

        A table dropped and created again since it was described (its columns or the
        bookkeeping gone) fails the batch once; it is described afresh and the batch retried.
        A second failure is raised: the offsets stay uncommitted and the batch is read again."""
        try:
            return self._apply_all(events)
        except (psycopg.errors.UndefinedColumn, psycopg.errors.UndefinedTable) as exc:
            log.warning("sink: target changed under the sink (%s); describing it again", exc)
            self.tables.clear()
            return self._apply_all(events)

    def _apply_all(self, events: Sequence[ChangeEvent]) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self.conn.transaction():
            for event in events:
                result = self.apply(event)
                counts[result] = counts.get(result, 0) + 1
        return counts
