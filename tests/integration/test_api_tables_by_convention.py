"""``/reconciliation/tables/{name}`` for a table reconciled by convention (named in
RECONCILIATION_TABLES) before its first job: GET shows it, PATCH registers it."""

from __future__ import annotations

from typing import Any

import pytest

from cdcrecon.conf import settings
from reconciliation.models import TableMapping
from reconciliation.registry import conventional_mapping
from tests.factories import TableMappingFactory
from tests.integration.conftest import VIEW_JOBS

pytestmark = pytest.mark.django_db

CHANGE_TABLES = "reconciliation.change_tablemapping"
VIEW_TABLES = "reconciliation.view_tablemapping"
IDENTITY = (
    "name",
    "cassandra_keyspace",
    "cassandra_table",
    "postgres_schema",
    "postgres_table",
)


@pytest.fixture
def tuner(api_client: Any) -> Any:
    return api_client(VIEW_TABLES, CHANGE_TABLES)


@pytest.fixture
def conventional() -> str:
    name = "sessions"
    assert name in settings.reconciliation.tables
    assert not TableMapping.objects.filter(name=name).exists()
    return name


def test_get_shows_a_table_known_by_convention_with_its_defaults(tuner, conventional) -> None:
    response = tuner.get(f"/reconciliation/tables/{conventional}")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["registered"] is False
    assert (body["cassandra_keyspace"], body["cassandra_table"]) == (
        settings.cassandra.keyspace,
        conventional,
    )
    assert (body["postgres_schema"], body["postgres_table"]) == (
        settings.target.schema,
        conventional,
    )
    assert body["repair_policy"] == "off"
    assert body["repair_types"] == ["MISSING_IN_POSTGRES", "DATA_MISMATCH"]
    assert body["effective_repair_min_age_seconds"] == 600.0
    assert (body["repair_max_per_run"], body["repair_max_per_hour"]) == (100, 1000)
    assert body["enabled"] is True
    assert not TableMapping.objects.filter(name=conventional).exists()  # a GET registers nothing


def test_a_patch_registers_it_as_its_first_job_would_then_applies_the_change(
    tuner, conventional
) -> None:
    response = tuner.patch(
        f"/reconciliation/tables/{conventional}",
        {"repair_policy": "dry_run", "cdc_lag_budget_seconds": 45},
        format="json",
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["registered"] is True
    assert (body["repair_policy"], body["effective_repair_min_age_seconds"]) == ("dry_run", 45.0)
    stored = TableMapping.objects.get(name=conventional)
    expected = conventional_mapping(conventional)
    assert [getattr(stored, f) for f in IDENTITY] == [getattr(expected, f) for f in IDENTITY]
    assert (stored.repair_policy, stored.cdc_lag_budget_seconds) == ("dry_run", 45)
    assert tuner.get(f"/reconciliation/tables/{conventional}").json()["registered"] is True


def test_a_rejected_patch_registers_nothing(tuner, conventional) -> None:
    response = tuner.patch(
        f"/reconciliation/tables/{conventional}", {"repair_max_per_run": 0}, format="json"
    )

    assert response.status_code == 400
    assert "repair_max_per_run" in response.json()["fields"]
    assert not TableMapping.objects.filter(name=conventional).exists()


def test_a_reader_may_see_it_but_not_register_it(api_client, conventional) -> None:
    reader = api_client(VIEW_TABLES, VIEW_JOBS)

    assert reader.get(f"/reconciliation/tables/{conventional}").status_code == 200
    response = reader.patch(
        f"/reconciliation/tables/{conventional}", {"repair_policy": "on"}, format="json"
    )

    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied"
    assert not TableMapping.objects.filter(name=conventional).exists()


@pytest.mark.parametrize("method", ["get", "patch"])
def test_a_name_neither_registered_nor_configured_is_a_json_404_listing_the_known_tables(
    tuner, method
) -> None:
    TableMappingFactory(name="ledger_entries")

    response = getattr(tuner, method)(
        "/reconciliation/tables/payments", {"repair_policy": "on"}, format="json"
    )

    assert response.status_code == 404
    error = response.json()
    assert error["error"] == "not_found"
    assert "'payments'" in error["detail"]
    for name in (*settings.reconciliation.tables, "ledger_entries"):
        assert name in error["detail"], error
    assert not TableMapping.objects.filter(name="payments").exists()


def test_the_schema_documents_registered(client) -> None:
    schema = client.get("/api/schema/?format=json").json()

    table = schema["components"]["schemas"]["Table"]["properties"]
    assert table["registered"]["type"] == "boolean"
    assert table["registered"]["readOnly"] is True
