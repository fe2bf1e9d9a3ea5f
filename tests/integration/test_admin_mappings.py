"""The Django admin as the operator's tool: table mappings and the overview."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from reconciliation import connections
from reconciliation.choices import (
    MismatchType,
    ValidationStrategy,
)
from reconciliation.models import ReconciliationJob, TableMapping
from tests.integration.test_admin import (
    MAPPINGS,
    OVERVIEW,
    RESOLVER_PERMS,
    make_job,
    make_mismatch,
    operator,
)
from tests.support import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(django_user_model: Any, client: Any) -> Any:
    """An operator who may view and resolve, logged in (as in ``test_admin.py``)."""
    user = operator(django_user_model, "alice", *RESOLVER_PERMS)
    client.force_login(user)
    return user


# --- table mappings ------------------------------------------------------------------------


def mapping_form(**overrides: Any) -> dict[str, Any]:
    from cdcrecon.conf import settings

    return {
        "name": "audit_events",
        "enabled": "on",
        "scheduled_strategy": ValidationStrategy.CHECKSUM,
        "cassandra_keyspace": settings.cassandra.keyspace,
        "cassandra_table": "audit_events",
        "postgres_schema": "public",
        "postgres_table": "audit_events",
        "timestamp_column": "updated_at",
        "excluded_columns": "_cdc_*, internal_note",
        "warning_threshold": "",
        "critical_threshold": "",
        **overrides,
    }


def test_a_new_mapping_gets_its_key_columns_from_cassandra(client, admin_user, cassandra) -> None:
    cassandra.execute(
        "CREATE TABLE IF NOT EXISTS admin_mapped (tenant text, day date, seq int, body text, "
        "PRIMARY KEY ((tenant, day), seq))"
    )
    client.force_login(admin_user)

    response = client.post(
        reverse("admin:reconciliation_tablemapping_add"),
        mapping_form(name="admin_mapped", cassandra_table="admin_mapped"),
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    mapping = TableMapping.objects.get(name="admin_mapped")
    assert mapping.partition_key_columns == ["tenant", "day"]
    assert mapping.clustering_columns == ["seq"]
    assert mapping.excluded_columns == ["_cdc_*", "internal_note"]


def test_a_mapping_to_a_cassandra_table_that_does_not_exist_is_refused(
    client, admin_user, cassandra
) -> None:
    client.force_login(admin_user)

    response = client.post(
        reverse("admin:reconciliation_tablemapping_add"),
        mapping_form(cassandra_table="no_such_table"),
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "does not exist" in errors["cassandra_table"][0]
    assert not TableMapping.objects.filter(name="audit_events").exists()


def test_a_mapping_cannot_be_added_while_cassandra_is_down(client, admin_user, settings) -> None:
    client.force_login(admin_user)
    settings.CASSANDRA = dataclasses.replace(settings.CASSANDRA, port=free_port())
    connections.close_cassandra()
    try:
        response = client.post(reverse("admin:reconciliation_tablemapping_add"), mapping_form())
    finally:
        connections.close_cassandra()

    assert response.status_code == 200
    errors = response.context["adminform"].form.non_field_errors()
    assert "Cannot discover the key columns" in errors[0]
    assert "unreachable" in errors[0]
    assert not TableMapping.objects.filter(name="audit_events").exists()


def test_reconcile_now_asks_for_the_strategy_and_starts_a_job(
    client, admin_user, django_capture_on_commit_callbacks
) -> None:
    mapping = TableMapping.objects.create(
        name="users",
        cassandra_keyspace="ks",
        cassandra_table="users",
        postgres_schema="public",
        postgres_table="users",
    )
    client.force_login(admin_user)
    selection = {"action": "reconcile_now", "_selected_action": [mapping.pk]}

    form_page = client.post(MAPPINGS, selection)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        client.post(MAPPINGS, {**selection, "apply": "yes", "strategy": "ROW_COUNT"})

    assert b'name="strategy"' in form_page.content
    job = ReconciliationJob.objects.get(table_name="users")
    assert job.validation_strategy == ValidationStrategy.ROW_COUNT
    assert len(queued) == 1


# --- the overview ----------------------------------------------------------------------------


def test_the_overview_is_linked_from_the_admin_index(client, alice) -> None:
    assert OVERVIEW in client.get(reverse("admin:index")).content.decode()


def test_the_overview_shows_drift_trend_open_mismatches_and_the_next_run(client, alice) -> None:
    now = timezone.now()
    for days_ago, drift in ((5, 0.2), (3, 1.5), (1, 6.0)):
        make_job("users", drift_percentage=drift, started_at=now - dt.timedelta(days=days_ago))
    make_job("users", drift_percentage=9.0, started_at=now - dt.timedelta(days=9))  # too old
    job = make_job("users", drift_percentage=0.4, started_at=now - dt.timedelta(hours=1))
    make_mismatch(job, "u1")
    make_mismatch(job, "u2", mismatch_type=MismatchType.MISSING_IN_POSTGRES)
    make_mismatch(job, "u3", mismatch_type=MismatchType.MISSING_IN_POSTGRES)
    PeriodicTask.objects.all().delete()
    PeriodicTask.objects.create(
        name="cdcrecon: scheduled reconciliation",
        task="reconciliation.run_scheduled_reconciliation",
        interval=IntervalSchedule.objects.create(every=60, period=IntervalSchedule.MINUTES),
        last_run_at=now - dt.timedelta(minutes=20),
    )

    response = client.get(OVERVIEW)
    html = response.content.decode()
    users_row = re.search(r'data-table="users">(.*?)</tr>', html, re.S).group(1)

    assert response.status_code == 200
    assert "<svg" in users_row
    assert users_row.count("<circle") == 4  # the runs of the last 7 days
    assert "0.40%" in users_row  # latest drift
    assert "cdc-threshold-warning" in users_row
    assert re.search(r"Missing in PostgreSQL</span> 2</a>", users_row)
    assert re.search(r"Data mismatch</span> 1</a>", users_row)
    expected = (now + dt.timedelta(minutes=40)).strftime("%Y-%m-%d %H:")
    assert expected in users_row
    assert 'id="cdc-open-total">3<' in html


def test_the_overview_says_not_scheduled_without_a_periodic_task(client, alice) -> None:
    PeriodicTask.objects.all().delete()

    html = client.get(OVERVIEW).content.decode()

    assert re.search(r'cdc-next-run">not scheduled<', html)
    assert "no runs in 7 days" in html


def test_the_overview_needs_the_view_job_permission(client, django_user_model) -> None:
    client.force_login(operator(django_user_model, "mapper", "view_tablemapping"))

    assert client.get(OVERVIEW).status_code == 403


# --- the repair policy ---------------------------------------------------------------------


def post_mapping(client: Any, user: Any, mapping: TableMapping, **overrides: Any) -> Any:
    """Post the mapping's change form with ``overrides``."""
    client.force_login(user)
    return client.post(
        reverse("admin:reconciliation_tablemapping_change", args=[mapping.pk]),
        mapping_form(
            name=mapping.name,
            cassandra_table=mapping.cassandra_table,
            postgres_table=mapping.postgres_table,
            **overrides,
        ),
    )


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"repair_policy": "sometimes"}, "repair_policy", "not one of the available choices"),
        ({"repair_policy": "on"}, "repair_policy", "at least one mismatch type"),
        (
            {
                "repair_policy": "on",
                "repair_data_mismatch": "on",
                "repair_max_per_run": "50",
                "repair_max_per_hour": "10",
            },
            "repair_max_per_run",
            "must not exceed repairs per hour (10)",
        ),
        ({"repair_max_per_run": "0"}, "repair_max_per_run", "greater than or equal to 1"),
        ({"repair_min_age_seconds": "-5"}, "repair_min_age_seconds", "greater than or equal to 0"),
        ({"source_max_rows_per_second": "fast"}, "source_max_rows_per_second", "whole number"),
    ],
)
def test_the_admin_form_names_the_field_of_a_bad_repair_policy(
    client, admin_user, table_pair, overrides, field, words
) -> None:
    mapping = table_pair("id text PRIMARY KEY, email text", "id text PRIMARY KEY, email text")

    response = post_mapping(client, admin_user, mapping, **overrides)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert words in " ".join(errors[field]), errors
    mapping.refresh_from_db()
    assert mapping.repair_policy == "off"


def test_the_admin_form_saves_a_repair_policy_and_a_read_rate_cap(
    client, admin_user, table_pair
) -> None:
    mapping = table_pair("id text PRIMARY KEY, email text", "id text PRIMARY KEY, email text")

    response = post_mapping(
        client,
        admin_user,
        mapping,
        repair_policy="dry_run",
        repair_missing_in_target="on",
        repair_min_age_seconds="120",
        repair_max_per_run="5",
        repair_max_per_hour="50",
        source_max_rows_per_second="2000",
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    mapping.refresh_from_db()
    assert (mapping.repair_policy, mapping.repair_min_age_seconds) == ("dry_run", 120)
    assert (mapping.repair_max_per_run, mapping.repair_max_per_hour) == (5, 50)
    assert mapping.repair_types == [MismatchType.MISSING_IN_POSTGRES]
    assert mapping.source_max_rows_per_second == 2000
