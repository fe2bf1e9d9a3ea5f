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

This module is the Kafka side (subscription, batches, offsets, the command line); what a
batch does to the target tables is ``pipeline.target``.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from pipeline.events import ChangeEvent, UndecodableEvent, decode, with_key
from pipeline.target import Writer

log = logging.getLogger("pipeline.sink")

_KEYSPACE = re.compile(r"[A-Za-z0-9_]{1,48}")


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


def topic_pattern(prefix: str, keyspaces: Iterable[str]) -> str:
    """The regex subscription for the keyspaces' topics (librdkafka: a leading ``^``)."""
    names = []
    for keyspace in keyspaces:
        if not _KEYSPACE.fullmatch(keyspace):
            raise ValueError(f"{keyspace!r} is not a Cassandra keyspace name")
        names.append(re.escape(keyspace))
    return rf"^{re.escape(prefix)}\.({'|'.join(names)})\.[A-Za-z0-9_]+$"


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
        writer = Writer(conn, options.schema, options.corrupt)
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
