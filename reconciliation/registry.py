"""Which tables can be reconciled, and their keys.

Every name in RECONCILIATION_TABLES is reconcilable without a manual step: ``get_mapping``
registers it on first use by convention (``CASSANDRA_KEYSPACE.name`` → ``POSTGRES_SCHEMA.name``),
whichever entry point asks first (API, CLI, beat, admin).  Key columns come from Cassandra's
``system_schema`` when a mapping has none yet.  Nothing else reaches a store: a name that is
neither registered nor configured is an ``UnknownTable``.
"""

from __future__ import annotations

from typing import Any

from cassandra.cluster import Session
from django.db import IntegrityError, transaction

from cdcrecon.conf import settings
from reconciliation.engine.identifiers import cql_name
from reconciliation.models import TableMapping


class UnknownTable(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"Table {name!r} is not registered for reconciliation. Registered tables: "
            f"{', '.join(registered_names()) or 'none'}."
        )
        self.name = name


class TableNotFound(LookupError):
    """The mapped Cassandra table does not exist (or has no primary key)."""


def registered_names() -> list[str]:
    names = set(TableMapping.objects.values_list("name", flat=True))
    names.update(settings.reconciliation.tables)
    return sorted(names)


def conventional_mapping(name: str) -> TableMapping:
    return TableMapping(
        name=name,
        cassandra_keyspace=settings.cassandra.keyspace,
        cassandra_table=name,
        postgres_schema=settings.target.schema,
        postgres_table=name,
    )


def get_mapping(name: str) -> TableMapping:
    """The mapping called ``name``, registering a configured table by convention."""
    try:
        return TableMapping.objects.get(name=name)
    except TableMapping.DoesNotExist:
        pass
    if name not in settings.reconciliation.tables:
        raise UnknownTable(name)
    mapping = conventional_mapping(name)
    try:
        with transaction.atomic():
            mapping.save()
    except IntegrityError:  # registered concurrently by another process
        return TableMapping.objects.get(name=name)
    return mapping


def peek_mapping(name: str) -> TableMapping:
    """The mapping called ``name`` without registering anything: the stored row, else the
    unsaved mapping the first use would register by convention (``pk`` None, key columns
    blank until a job reads them from Cassandra); ``UnknownTable`` for any other name."""
    mapping = TableMapping.objects.filter(name=name).first()
    if mapping is not None:
        return mapping
    if name not in settings.reconciliation.tables:
        raise UnknownTable(name)
    return conventional_mapping(name)


def register_configured_tables() -> list[TableMapping]:
    return [get_mapping(name) for name in settings.reconciliation.tables]


def _system_schema_columns(session: Session, keyspace: str, table: str) -> list[dict[str, Any]]:
    cql_name(keyspace), cql_name(table)  # refuse odd names before asking the store
    rows: list[dict[str, Any]] = list(
        session.execute(
            "SELECT column_name, type, kind, position FROM system_schema.columns "
            "WHERE keyspace_name = %s AND table_name = %s",
            (keyspace, table),
        )
    )
    if not rows:
        raise TableNotFound(f"Cassandra table {keyspace}.{table} does not exist.")
    return rows


def cassandra_column_types(session: Session, keyspace: str, table: str) -> dict[str, str]:
    """Every column of a Cassandra table and its CQL type, from system_schema."""
    return {r["column_name"]: r["type"] for r in _system_schema_columns(session, keyspace, table)}


def discover_key_columns(
    session: Session, keyspace: str, table: str
) -> tuple[list[str], list[str]]:
    """(partition key columns, clustering columns), each in key order, from system_schema."""
    rows = _system_schema_columns(session, keyspace, table)
    partition = sorted(
        (r for r in rows if r["kind"] == "partition_key"), key=lambda r: r["position"]
    )
    clustering = sorted((r for r in rows if r["kind"] == "clustering"), key=lambda r: r["position"])
    return [r["column_name"] for r in partition], [r["column_name"] for r in clustering]


def ensure_key_columns(mapping: TableMapping, session: Session) -> TableMapping:
    """Fill a mapping's key columns from Cassandra when they are blank (and save them)."""
    if not mapping.partition_key_columns:
        partition, clustering = discover_key_columns(
            session, mapping.cassandra_keyspace, mapping.cassandra_table
        )
        mapping.partition_key_columns, mapping.clustering_columns = partition, clustering
        if mapping.pk:
            TableMapping.objects.filter(pk=mapping.pk).update(
                partition_key_columns=partition, clustering_columns=clustering
            )
    return mapping


def get_mapping_for_cassandra_table(keyspace: str, table: str) -> TableMapping:
    """The mapping whose source is ``keyspace.table``, registering a configured table by
    convention; ``UnknownTable`` when the Cassandra table is not reconciled."""
    mapping = TableMapping.objects.filter(
        cassandra_keyspace=keyspace, cassandra_table=table
    ).first()
    if mapping is not None:
        return mapping
    if keyspace == settings.cassandra.keyspace and table in settings.reconciliation.tables:
        mapping = get_mapping(table)
        if (mapping.cassandra_keyspace, mapping.cassandra_table) == (keyspace, table):
            return mapping
    raise UnknownTable(f"{keyspace}.{table}")
