"""``/reconciliation/tables``: the registered tables and the settings an operator tunes on
them (the repair policy, the CDC lag budget, the read-rate cap); bad values are JSON 400s
naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from reconciliation.models import TableMapping
from tests.factories import TableMappingFactory
from tests.integration.conftest import VIEW_JOBS

pytestmark = pytest.mark.django_db

CHANGE_TABLES = "reconciliation.change_tablemapping"
VIEW_TABLES = "reconciliation.view_tablemapping"


@pytest.fixture
def orders() -> TableMapping:
    return TableMappingFactory(name="orders")


@pytest.fixture
def tuner(api_client: Any) -> Any:
    return api_client(VIEW_TABLES, CHANGE_TABLES)


def test_a_table_shows_its_policy_with_the_defaults(orders, tuner) -> None:
    body = tuner.get("/reconciliation/tables/orders").json()

    assert body["name"] == "orders"
    assert body["repair_policy"] == "off"
    assert (body["repair_missing_in_target"], body["repair_data_mismatch"]) == (True, True)
    assert body["repair_extra_in_target"] is False  # it deletes: off unless asked for
    assert body["repair_types"] == ["MISSING_IN_POSTGRES", "DATA_MISMATCH"]
    assert body["effective_repair_min_age_seconds"] == 600.0
    assert (body["repair_max_per_run"], body["repair_max_per_hour"]) == (100, 1000)
    assert body["source_max_rows_per_second"] is None
    listed = tuner.get("/reconciliation/tables").json()
    assert [t["name"] for t in listed] == ["orders"]


def test_a_patch_changes_only_what_it_sends(orders, tuner) -> None:
    response = tuner.patch(
        "/reconciliation/tables/orders",
        {"repair_policy": "dry_run", "cdc_lag_budget_seconds": 90, "repair_extra_in_target": True},
        format="json",
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["repair_policy"] == "dry_run"
    assert body["effective_repair_min_age_seconds"] == 90.0  # the table's lag budget
    assert body["repair_types"] == ["MISSING_IN_POSTGRES", "DATA_MISMATCH", "MISSING_IN_CASSANDRA"]
    orders.refresh_from_db()
    assert (orders.repair_policy, orders.cdc_lag_budget_seconds) == ("dry_run", 90)
    assert orders.repair_max_per_run == 100


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"repair_policy": "sometimes"}, "repair_policy", '"sometimes" is not a repair policy'),
        ({"repair_policy": None}, "repair_policy", "may not be null"),
        ({"repair_max_per_run": 0}, "repair_max_per_run", "greater than or equal to 1"),
        ({"repair_max_per_hour": -3}, "repair_max_per_hour", "greater than or equal to 1"),
        ({"repair_max_per_run": "many"}, "repair_max_per_run", "valid integer"),
        ({"repair_min_age_seconds": -1}, "repair_min_age_seconds", "greater than or equal to 0"),
        ({"repair_data_mismatch": "maybe"}, "repair_data_mismatch", "valid boolean"),
        ({"source_max_rows_per_second": -10}, "source_max_rows_per_second", "greater than"),
        (
            {"repair_max_per_run": 500, "repair_max_per_hour": 100},
            "repair_max_per_run",
            "Repairs per run (500) must not exceed repairs per hour (100).",
        ),
        (
            {
                "repair_policy": "on",
                "repair_missing_in_target": False,
                "repair_data_mismatch": False,
            },
            "repair_policy",
            "needs at least one mismatch type",
        ),
        ({"repair_polcy": "on"}, "repair_polcy", "Unknown field"),
        ({"cassandra_table": "other"}, "cassandra_table", "Read-only"),
    ],
)
def test_a_bad_value_is_a_json_400_naming_its_field_and_nothing_changes(
    orders, tuner, body, field, words
) -> None:
    response = tuner.patch("/reconciliation/tables/orders", body, format="json")

    assert response.status_code == 400
    error = response.json()
    assert error["error"] == "invalid_request"
    assert field in error["fields"], error
    assert words in " ".join(error["fields"][field]), error
    assert field in error["detail"] or words in error["detail"], error
    orders.refresh_from_db()
    assert orders.repair_policy == "off"
    assert (orders.repair_max_per_run, orders.repair_max_per_hour) == (100, 1000)


def test_the_rules_between_fields_see_the_stored_values_too(orders, tuner) -> None:
    TableMapping.objects.filter(pk=orders.pk).update(repair_max_per_hour=20)

    response = tuner.patch(
        "/reconciliation/tables/orders", {"repair_max_per_run": 21}, format="json"
    )

    assert response.status_code == 400
    assert "repair_max_per_run" in response.json()["fields"]


def test_changing_a_table_needs_the_change_permission(orders, api_client) -> None:
    reader = api_client(VIEW_TABLES, VIEW_JOBS)

    assert reader.get("/reconciliation/tables/orders").status_code == 200
    response = reader.patch("/reconciliation/tables/orders", {"repair_policy": "on"}, format="json")

    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied"
    orders.refresh_from_db()
    assert orders.repair_policy == "off"


def test_an_unknown_table_is_a_json_404(tuner) -> None:
    response = tuner.patch("/reconciliation/tables/nope", {"repair_policy": "on"}, format="json")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_put_is_not_offered(orders, tuner) -> None:
    response = tuner.put("/reconciliation/tables/orders", {"repair_policy": "on"}, format="json")

    assert response.status_code == 405
