"""cdcrecon's own Kafka -> PostgreSQL sink for the Debezium Cassandra connector's events.

    python -m pipeline.sink --keyspaces warehouse --target postgres://…/warehouse

For each topic ``cdc.<keyspace>.<table>`` of the given keyspaces it writes into the table of
the same name in the target schema (a table the target does not have is skipped, with a log
line): upserts by primary key for inserts and updates (only the columns the mutation
touched), deletes by key for row deletes. Guarantees:

- **At-least-once.** Offsets are committed to Kafka only after the PostgreSQL transaction
  holding the batch has committed; a sink killed mid-batch loses the transaction and reads the
  batch again.
- **Replays never go back in time.** Every row carries ``_cdc_write_ts`` (the Cassandra write
  time, microseconds, of the newest mutation applied); a mutation older than that is skipped,
  so replaying a batch is a no-op. A write to the table from anywhere else (cdcrecon's repair,
  an operator) is stamped with its wall-clock time by a trigger the sink installs, so a replay
  of mutations older than a repair cannot undo it either.
- ``_cdc_expires_at``: when the row expires in Cassandra by TTL (null without one).
  PostgreSQL has no TTL and Cassandra's expiry is never in the commit log, so the copy stays.

Both bookkeeping columns are added to a target table the first time the sink writes to it;
cdcrecon excludes ``_cdc_*`` columns from comparison by default. Where the table has the demo's
``_cdc_operation`` / ``_cdc_ingested_at`` columns, the sink fills them too.

Test hook (not for production): ``PIPELINE_SINK_CORRUPT=<table>.<column>`` makes the sink
alter that column in every row it writes (text gets ``~`` appended, numbers 1 added), so the
tests can prove that cdcrecon reports a column-transform bug.
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from psycopg import sql
from psycopg.types.json import Jsonb

from pipeline.events import ChangeEvent, UndecodableEvent, decode, to_postgres, with_key

log = logging.getLogger("pipeline.sink")

WRITE_TS = "_cdc_write_ts"
EXPIRES_AT = "_cdc_expires_at"
OPERATION = "_cdc_operation"
INGESTED_AT = "_cdc_ingested_at"
SINK_SETTING = "cdcrecon.sink"  # set 'on' on the sink's own connection; the trigger reads it
_KEYSPACE = re.compile(r"[A-Za-z0-9_]{1,48}")
_OPERATIONS = {"i": "INSERT", "u": "UPDATE", "d": "DELETE"}


@dataclass(frozen=True)
class SinkOptions:
    """What one sink process reads and where it writes."""

    kafka: str
    keyspaces: tuple[str, ...]
    target: str
    schema: str = "public"
    group: str = "cdcrecon-sink"
    topic_prefix: str = "cdc"
    batch_size: int = 500
    corrupt: tuple[str, str] | None = None  # (table, column): the test hook above


@dataclass
class TargetTable:
    """A target table's columns (name -> (data_type, array element type)) and primary key."""

    name: str
    columns: dict[str, tuple[str, str | None]]
    key: list[str]
    unknown_logged: set[str] = field(default_factory=set)


def topic_pattern(prefix: str, keyspaces: Iterable[str]) -> str:
    """The regex subscription for the keyspaces' topics (librdkafka: a leading ``^``)."""
    names = []
    for keyspace in keyspaces:
        if not _KEYSPACE.fullmatch(keyspace):
            raise ValueError(f"{keyspace!r} is not a Cassandra keyspace name")
        names.append(re.escape(keyspace))
    return rf"^{re.escape(prefix)}\.({'|'.join(names)})\.[A-Za-z0-9_]+$"


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

    def __init__(self, conn: psycopg.Connection, options: SinkOptions) -> None:
        self.conn = conn
        self.options = options
        self.tables: dict[str, TargetTable | None] = {}
        self.missing_since: dict[str, float] = {}
        conn.execute(sql.SQL("SET {} = 'on'").format(sql.Identifier(*SINK_SETTING.split("."))))

    def table(self, name: str, refresh: bool = False) -> TargetTable | None:
        if name in self.missing_since and time.monotonic() - self.missing_since[name] > 5:
            refresh = True  # a table the target lacked may have been created since
        if refresh or name not in self.tables:
            found = describe_table(self.conn, self.options.schema, name)
            if found is not None and (
                WRITE_TS not in found.columns or EXPIRES_AT not in found.columns
            ):
                ensure_bookkeeping(self.conn, self.options.schema, name)
                found = describe_table(self.conn, self.options.schema, name)
            if found is None and name not in self.tables:
                log.warning(
                    "sink: no table %s.%s in the target; its events are skipped",
                    self.options.schema,
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
        if self.options.corrupt == (table.name, column):
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
            sql.Identifier(self.options.schema, table.name),
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
        target = sql.Identifier(self.options.schema, table.name)
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


def _events(messages: Sequence[Message]) -> list[ChangeEvent]:
    events = []
    for message in messages:
        try:
            event = decode(message.value())
            if event is not None:
                events.append(with_key(event, message.key()))
        except UndecodableEvent as exc:
            log.error(
                "sink: skipping %s[%s]@%s: %s",
                message.topic(),
                message.partition(),
                message.offset(),
                exc,
            )
    return events


def _next_offsets(messages: Sequence[Message]) -> list[TopicPartition]:
    last: dict[tuple[str, int], int] = {}
    for m in messages:
        topic, partition, offset = m.topic(), m.partition(), m.offset()
        if topic is not None and partition is not None and offset is not None:
            last[(topic, partition)] = max(offset, last.get((topic, partition), -1))
    return [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]


def consumer_config(options: SinkOptions) -> dict[str, Any]:
    """Manual commits, new topics found within seconds, a restarted sink back at once."""
    return {
        "bootstrap.servers": options.kafka,
        "group.id": options.group,
        # Static membership: a sink restarted after a crash takes its partitions back at
        # once instead of waiting for the dead member's session to time out.
        "group.instance.id": f"{options.group}-1",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "topic.metadata.refresh.interval.ms": 2000,
        "session.timeout.ms": 10000,
        "socket.connection.setup.timeout.ms": 10000,
    }


def run(options: SinkOptions, stop: threading.Event) -> None:
    """Consume until ``stop`` is set: batch, write in one transaction, then commit offsets."""
    consumer = Consumer(consumer_config(options))

    def on_assign(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("sink: assigned %s", [f"{p.topic}[{p.partition}]" for p in partitions])

    consumer.subscribe(
        [topic_pattern(options.topic_prefix, options.keyspaces)], on_assign=on_assign
    )
    with psycopg.connect(options.target, autocommit=True) as conn:
        writer = Writer(conn, options)
        # Subscribed and connected to both: a topic made later is found within seconds
        # (topic.metadata.refresh.interval.ms) and read from its start.
        print("sink: ready", flush=True)
        try:
            while not stop.is_set():
                messages = consumer.consume(options.batch_size, timeout=0.5)
                good = []
                for m in messages:
                    error = m.error()
                    if error is None:
                        good.append(m)
                    elif error.code() not in (
                        KafkaError._PARTITION_EOF,
                        KafkaError.UNKNOWN_TOPIC_OR_PART,  # no topic of the keyspaces yet
                    ):
                        log.warning("sink: %s", error)
                if not good:
                    continue
                counts = writer.apply_batch(_events(good))
                # Only now, with the batch committed in PostgreSQL: at-least-once.
                consumer.commit(offsets=_next_offsets(good), asynchronous=False)
                log.info("sink: batch of %d: %s", len(good), counts)
        finally:
            consumer.close()


def parse_options(argv: Sequence[str] | None = None) -> SinkOptions:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kafka", default=os.environ.get("PIPELINE_KAFKA", "127.0.0.1:9092"))
    parser.add_argument("--keyspaces", required=True, help="comma-separated Cassandra keyspaces")
    parser.add_argument("--target", required=True, help="the target PostgreSQL URL")
    parser.add_argument("--schema", default="public")
    parser.add_argument("--group", default="cdcrecon-sink")
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args(argv)
    corrupt = os.environ.get("PIPELINE_SINK_CORRUPT")
    corrupt_at: tuple[str, str] | None = None
    if corrupt:
        table, _, column = corrupt.partition(".")
        if not column:
            parser.error("PIPELINE_SINK_CORRUPT must be <table>.<column>")
        corrupt_at = (table, column)
    return SinkOptions(
        kafka=args.kafka,
        keyspaces=tuple(k for k in args.keyspaces.split(",") if k),
        target=args.target,
        schema=args.schema,
        group=args.group,
        batch_size=args.batch_size,
        corrupt=corrupt_at,
    )


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout
    )
    options = parse_options(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if options.corrupt:
        log.warning("sink: TEST HOOK: altering %s.%s in every row written", *options.corrupt)
    run(options, stop)


if __name__ == "__main__":
    main()
