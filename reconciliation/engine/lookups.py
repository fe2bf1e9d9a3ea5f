"""Reading given keys back from both stores: the re-check of a ledger row ("re-check now")
and where "the same row" is in each store (repair, GDPR erasure).  Read-only."""

from __future__ import annotations

import marshal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cassandra.cluster import Session

from reconciliation.engine.codecs import CODECS
from reconciliation.engine.core import Engine
from reconciliation.engine.schema import TableSpec
from reconciliation.engine.terms import Connect, Difference, Options


def recheck_keys(
    spec: TableSpec,
    session: Session,
    connect: Connect,
    options: Options,
    primary_key_values: Sequence[str],
) -> list[Difference | None]:
    """Read these keys (``Mismatch.primary_key_value`` texts) back from both stores now and
    compare them: for each, its Difference as a job would report it, or None when the two
    sides agree.  The same key equality and lookups as the jobs' transient re-check.
    Read-only; raises BadKey for a key text that does not fit the table's key columns."""
    engine = Engine(spec, session, connect, options, report=lambda difference: None)
    keys = [engine.key_bytes_of(value) for value in primary_key_values]
    return engine.compare_keys(keys)


@dataclass(frozen=True)
class StoredKeys:
    """The key column values of every row equal to one key, as each store holds them."""

    cassandra: list[tuple[Any, ...]]
    postgres: list[tuple[Any, ...]]


def stored_keys(
    spec: TableSpec,
    session: Session,
    connect: Connect,
    options: Options,
    primary_key_value: str,
) -> StoredKeys:
    """Where "the same row" as ``primary_key_value`` is in each store, by the engine's one
    key equality (a uuid key the target keeps as upper-case text, a decimal key Cassandra
    keeps as 1.10): the key values to bind to find, lock, update or delete exactly those
    rows (repair, GDPR erasure).  Read-only; BadKey when the text does not fit the key."""
    engine = Engine(spec, session, connect, options, report=lambda difference: None)
    forms = [list(marshal.loads(engine.key_bytes_of(primary_key_value)))]
    codec = engine.codec
    size = len(engine.layout.key)
    width = len(engine.layout.columns)
    source = engine.cassandra.lookup_all(forms, lambda row: codec.cassandra_record(row)[1])
    target = engine.postgres.lookup(forms, lambda row: codec.postgres_record(row)[1], raw_key=True)
    return StoredKeys(
        cassandra=[_driver_key(engine, row[1 : 1 + size]) for row in source[0]],
        postgres=[tuple(row[width:]) for row in target[0]],
    )


def _driver_key(engine: Engine, values: Sequence[Any]) -> tuple[Any, ...]:
    # Timestamps are selected as epoch milliseconds and uuids as bytes
    # (cqlselect.select_column): bind them back as UTC datetimes and uuid.UUIDs, which every
    # driver code path accepts.
    key = []
    for column, value in zip(engine.layout.key, values, strict=True):
        codec = CODECS.get(column.cql_type.name)
        key.append(value if codec is None else codec.bind_selected(value))
    return tuple(key)
