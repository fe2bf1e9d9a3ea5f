"""The API latency bench's data builder fills every column the models need, whatever columns
they gain (a NOT NULL column added later once broke it), and its rows are ones the API serves."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from reconciliation.models import Mismatch, ReconciliationJob
from tests.support import current_database_url

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import api_latency  # noqa: E402


def _required_columns(model: Any) -> set[str]:
    return {
        f.column
        for f in model._meta.concrete_fields
        if not f.null and not f.has_db_default() and not f.primary_key
    }


def test_the_statements_name_every_column_without_a_database_default() -> None:
    (jobs, _), (mismatches, _) = api_latency.fill_statements(rows=10, jobs=2)
    for model, statement in ((ReconciliationJob, jobs), (Mismatch, mismatches)):
        listed = statement.split("(", 1)[1].split(")", 1)[0]
        missing = _required_columns(model) - {c.strip() for c in listed.split(",")}
        assert not missing, f"{model.__name__}: {sorted(missing)}"


@pytest.mark.django_db(transaction=True)
def test_the_builder_loads_jobs_and_mismatches_the_api_lists(
    client: Any, django_user_model: Any
) -> None:
    api_latency.fill(current_database_url(), rows=30, reload=True, jobs=3)

    assert ReconciliationJob.objects.count() == 3
    assert Mismatch.objects.count() == 30
    assert set(Mismatch.objects.values_list("job__table_name", flat=True)) == {
        "users",
        "orders",
        "sessions",
    }
    # Every model default was applied as Django would (e.g. a job's queue, its repair policy).
    job = ReconciliationJob.objects.first()
    assert job is not None and job.queue == "" and job.in_flight_count == 0
    admin = django_user_model.objects.create_superuser("bench-admin", password="x")
    client.force_login(admin)
    response = client.get("/reconciliation/mismatches?limit=100")
    assert response.status_code == 200, response.content[:300]
    assert response.json()["total"] == 30
