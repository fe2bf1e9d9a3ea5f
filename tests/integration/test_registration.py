"""Tables named in RECONCILIATION_TABLES are reconcilable without a manual step."""

from __future__ import annotations

import pytest
from django.test import override_settings

from cdcrecon.conf import settings
from reconciliation.registry import (
    TableNotFound,
    UnknownTable,
    discover_key_columns,
    ensure_key_columns,
    get_mapping,
)

pytestmark = pytest.mark.django_db


def test_a_configured_table_is_registered_by_convention_on_first_use() -> None:
    mapping = get_mapping("orders")

    assert mapping.pk is not None
    assert (mapping.cassandra_keyspace, mapping.cassandra_table) == (
        settings.cassandra.keyspace,
        "orders",
    )
    assert (mapping.postgres_schema, mapping.postgres_table) == (settings.target.schema, "orders")
    assert get_mapping("orders").pk == mapping.pk  # registered once


def test_an_unconfigured_table_is_unknown_and_not_registered() -> None:
    with pytest.raises(UnknownTable, match="'payments' is not registered"):
        get_mapping("payments")


def test_key_columns_are_discovered_from_system_schema_in_key_order(cassandra, table_pair) -> None:
    mapping = table_pair(
        "tenant text, day date, seq int, event_id uuid, payload text, "
        "PRIMARY KEY ((tenant, day), seq, event_id)",
        "tenant text, day date, seq int, event_id uuid, payload text, "
        "PRIMARY KEY (tenant, day, seq, event_id)",
    )

    assert mapping.partition_key_columns == ["tenant", "day"]
    assert mapping.clustering_columns == ["seq", "event_id"]
    assert mapping.key_columns == ["tenant", "day", "seq", "event_id"]
    mapping.refresh_from_db()
    assert mapping.partition_key_columns == ["tenant", "day"]  # saved for the next run


def test_a_configured_table_gets_its_keys_from_cassandra(cassandra) -> None:
    cassandra.execute(
        "CREATE TABLE IF NOT EXISTS sessions_conv (sid uuid PRIMARY KEY, user_id text)"
    )
    with override_settings(
        RECONCILIATION=settings.reconciliation.__class__(
            **{**settings.reconciliation.__dict__, "tables": ("sessions_conv",)}
        )
    ):
        mapping = ensure_key_columns(get_mapping("sessions_conv"), cassandra)
    assert mapping.partition_key_columns == ["sid"]
    assert mapping.clustering_columns == []


def test_a_missing_cassandra_table_is_reported_by_name(cassandra) -> None:
    with pytest.raises(TableNotFound, match=r"cdcrecon_test\w*\.no_such_table does not exist"):
        discover_key_columns(cassandra, settings.cassandra.keyspace, "no_such_table")


def test_a_configured_table_is_found_by_its_cassandra_name_too() -> None:
    from reconciliation.registry import get_mapping_for_cassandra_table

    mapping = get_mapping_for_cassandra_table(settings.cassandra.keyspace, "sessions")
    assert mapping.name == "sessions"
    with pytest.raises(UnknownTable):
        get_mapping_for_cassandra_table("other_keyspace", "sessions")
    with pytest.raises(UnknownTable):
        get_mapping_for_cassandra_table(settings.cassandra.keyspace, "payments")
