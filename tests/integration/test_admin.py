"""The Django admin as the operator's tool: mismatches and jobs (table mappings and the
overview: ``test_admin_mappings.py``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from reconciliation import connections
from reconciliation.choices import (
    AlertLevel,
    JobStatus,
    MismatchType,
    ResolutionStatus,
    ValidationStrategy,
)
from reconciliation.models import Mismatch, ReconciliationJob, TableMapping
from tests.support import free_port, latest_event

pytestmark = pytest.mark.django_db

MISMATCHES = reverse("admin:reconciliation_mismatch_changelist")
JOBS = reverse("admin:reconciliation_reconciliationjob_changelist")
MAPPINGS = reverse("admin:reconciliation_tablemapping_changelist")
OVERVIEW = reverse("admin:reconciliation_overview")


def operator(django_user_model: Any, name: str, *codenames: str) -> Any:
    user = django_user_model.objects.create_user(name, password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


RESOLVER_PERMS = ("view_mismatch", "change_mismatch", "view_reconciliationjob")


@pytest.fixture
def alice(django_user_model: Any, client: Any) -> Any:
    user = operator(django_user_model, "alice", *RESOLVER_PERMS)
    client.force_login(user)
    return user


def make_job(table: str = "users", **fields: Any) -> ReconciliationJob:
    defaults: dict[str, Any] = {
        "validation_strategy": ValidationStrategy.CHECKSUM,
        "status": JobStatus.COMPLETED,
        "completed_at": timezone.now(),
    }
    return ReconciliationJob.objects.create(table_name=table, **{**defaults, **fields})


def make_mismatch(job: ReconciliationJob, key: str, **fields: Any) -> Mismatch:
    defaults: dict[str, Any] = {
        "mismatch_type": MismatchType.DATA_MISMATCH,
        "cassandra_data": {"id": key, "email": f"{key}@new.example", "score": 1},
        "postgres_data": {"id": key, "email": f"{key}@old.example", "score": 1},
        "cassandra_checksum": "c" * 64,
        "postgres_checksum": "d" * 64,
    }
    return Mismatch.objects.create(
        job=job, table_name=job.table_name, primary_key_value=key, **{**defaults, **fields}
    )


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def action_names(response: Any) -> set[str]:
    return set(re.findall(r'<option value="(\w+)"', response.content.decode()))


# --- mismatches: permissions -----------------------------------------------------------


def test_a_user_without_the_repair_permission_does_not_see_the_repair_action(
    client, django_user_model
) -> None:
    make_mismatch(make_job(), "u1")
    resolver = operator(django_user_model, "resolver", *RESOLVER_PERMS)
    repairer = operator(django_user_model, "repairer", *RESOLVER_PERMS, "repair_mismatch")

    client.force_login(resolver)
    without = action_names(client.get(MISMATCHES))
    client.force_login(repairer)
    with_permission = action_names(client.get(MISMATCHES))

    assert "repair_from_source" not in without
    assert {"mark_resolved", "mark_ignored", "reopen"} <= without
    assert "repair_from_source" in with_permission


def test_a_user_who_may_only_view_gets_no_resolve_actions(client, django_user_model) -> None:
    make_mismatch(make_job(), "u1")
    client.force_login(operator(django_user_model, "viewer", "view_mismatch"))

    response = client.get(MISMATCHES)

    assert response.status_code == 200
    assert not {"mark_resolved", "mark_ignored", "reopen", "repair_from_source"} & action_names(
        response
    )


def test_nothing_in_the_admin_deletes_or_edits_mismatches(client, admin_user) -> None:
    mismatch = make_mismatch(make_job(), "u1")
    client.force_login(admin_user)  # even a superuser

    actions = action_names(client.get(MISMATCHES))
    delete_page = client.get(reverse("admin:reconciliation_mismatch_delete", args=[mismatch.pk]))
    job_delete = client.get(
        reverse("admin:reconciliation_reconciliationjob_delete", args=[mismatch.job_id])
    )
    edit = client.post(
        reverse("admin:reconciliation_mismatch_change", args=[mismatch.pk]),
        {"primary_key_value": "changed", "resolution_status": "IGNORED", "cassandra_data": "{}"},
    )
    add_page = client.get(reverse("admin:reconciliation_mismatch_add"))

    assert "delete_selected" not in actions
    assert delete_page.status_code == 403
    assert job_delete.status_code == 403
    assert add_page.status_code == 403
    assert edit.status_code == 302
    mismatch.refresh_from_db()
    assert mismatch.primary_key_value == "u1"
    assert mismatch.resolution_status == ResolutionStatus.PENDING
    assert mismatch.cassandra_data["email"] == "u1@new.example"
    assert Mismatch.objects.count() == 1


# --- mismatches: resolution through the intermediate form --------------------------------


def test_resolving_several_mismatches_asks_for_notes_and_records_who_and_when(
    client, alice
) -> None:
    job = make_job()
    first, second, untouched = (make_mismatch(job, k) for k in ("u1", "u2", "u3"))
    selection = {"action": "mark_resolved", "_selected_action": [first.pk, second.pk]}

    form_page = client.post(MISMATCHES, selection)
    done = client.post(
        MISMATCHES, {**selection, "apply": "yes", "select_across": "0", "notes": "synced by hand"}
    )

    assert form_page.status_code == 200
    assert b'name="notes"' in form_page.content
    assert b"2 mismatches selected" in form_page.content
    assert Mismatch.objects.filter(resolution_status=ResolutionStatus.PENDING).count() == 1
    assert done.status_code == 302
    for mismatch in (first, second):
        mismatch.refresh_from_db()
        assert mismatch.resolution_status == ResolutionStatus.MANUAL_RESOLVED
        assert mismatch.resolution_notes == "synced by hand"
        assert mismatch.resolved_by == alice
        assert timezone.now() - mismatch.resolved_at < dt.timedelta(minutes=1)
    untouched.refresh_from_db()
    assert untouched.resolution_status == ResolutionStatus.PENDING
    assert "2 mismatch(es) updated: u1, u2." in messages_of(
        done
    ) or "2 mismatch(es) updated: u2, u1." in messages_of(done)


def test_ignoring_records_the_ignored_status(client, alice) -> None:
    mismatch = make_mismatch(make_job(), "u1")

    client.post(
        MISMATCHES,
        {
            "action": "mark_ignored",
            "_selected_action": [mismatch.pk],
            "apply": "yes",
            "notes": "test account",
        },
    )

    mismatch.refresh_from_db()
    assert mismatch.resolution_status == ResolutionStatus.IGNORED
    assert mismatch.resolution_notes == "test account"


def test_empty_notes_are_refused_with_a_message_and_nothing_changes(client, alice) -> None:
    mismatch = make_mismatch(make_job(), "u1")

    response = client.post(
        MISMATCHES,
        {
            "action": "mark_resolved",
            "_selected_action": [mismatch.pk],
            "apply": "yes",
            "notes": "   ",
        },
    )

    assert response.status_code == 200  # the form again, not a redirect
    assert b"Notes are required" in response.content
    assert "Nothing was changed: notes are required." in messages_of(response)
    mismatch.refresh_from_db()
    assert mismatch.resolution_status == ResolutionStatus.PENDING
    assert mismatch.resolved_by is None


def test_the_second_operator_sees_who_resolved_it_first(client, alice, django_user_model) -> None:
    mismatch = make_mismatch(make_job(), "u1")
    bob = django_user_model.objects.create_user("bob")
    # bob resolves it between alice opening the form and submitting it
    Mismatch.objects.get(pk=mismatch.pk).resolve(bob, ResolutionStatus.MANUAL_RESOLVED, "done")

    response = client.post(
        MISMATCHES,
        {
            "action": "mark_ignored",
            "_selected_action": [mismatch.pk],
            "apply": "yes",
            "notes": "noise",
        },
        follow=True,
    )

    assert any("u1: already resolved by bob" in m for m in messages_of(response))
    mismatch.refresh_from_db()
    assert mismatch.resolution_status == ResolutionStatus.MANUAL_RESOLVED
    assert mismatch.resolved_by == bob
    assert mismatch.resolution_notes == "done"


def test_reopen_puts_a_resolved_mismatch_back_to_pending_with_the_note(
    client, alice, django_user_model
) -> None:
    mismatch = make_mismatch(make_job(), "u1")
    mismatch.resolve(alice, ResolutionStatus.IGNORED, "looked harmless")

    client.post(
        MISMATCHES,
        {
            "action": "reopen",
            "_selected_action": [mismatch.pk],
            "apply": "yes",
            "notes": "it came back",
        },
    )

    mismatch.refresh_from_db()
    assert mismatch.resolution_status == ResolutionStatus.PENDING
    assert mismatch.resolved_by is None
    assert "looked harmless" in mismatch.resolution_notes
    reopened = latest_event(mismatch)
    assert (reopened.actor_kind, reopened.actor) == ("operator", "alice")
    assert (reopened.to_status, reopened.reason) == (ResolutionStatus.PENDING, "it came back")
    assert "it came back" in mismatch.resolution_notes


# --- mismatches: list and change page -----------------------------------------------------


def test_the_list_filters_by_table_type_status_and_job_and_searches_keys(client, alice) -> None:
    users_job, orders_job = make_job("users"), make_job("orders")
    make_mismatch(users_job, "alpha-1")
    make_mismatch(users_job, "beta-2", mismatch_type=MismatchType.MISSING_IN_POSTGRES)
    make_mismatch(orders_job, "gamma-3")

    def keys(query: str) -> set[str]:
        html = client.get(f"{MISMATCHES}?{query}").content.decode()
        return set(re.findall(r"(alpha-1|beta-2|gamma-3)</a>", html))

    assert keys("") == {"alpha-1", "beta-2", "gamma-3"}
    assert keys("table=orders") == {"gamma-3"}
    assert keys("mismatch_type__exact=MISSING_IN_POSTGRES") == {"beta-2"}
    assert keys(f"job={users_job.job_id}") == {"alpha-1", "beta-2"}
    assert keys("resolution_status__exact=IGNORED") == set()
    assert keys("q=gamma") == {"gamma-3"}


def test_the_change_page_shows_both_rows_side_by_side_with_the_difference_highlighted(
    client, alice
) -> None:
    TableMapping.objects.create(
        name="users",
        cassandra_keyspace="ks",
        cassandra_table="users",
        postgres_schema="public",
        postgres_table="users",
        partition_key_columns=["id"],
    )
    mismatch = make_mismatch(make_job(), "u1")

    html = client.get(reverse("admin:reconciliation_mismatch_change", args=[mismatch.pk]))
    text = html.content.decode()

    assert html.status_code == 200
    differing = re.findall(r'class="cdc-row cdc-differs" data-column="(\w+)"', text)
    assert differing == ["email"]
    assert 'class="cdc-row" data-column="id"' in text
    assert "u1@new.example" in text and "u1@old.example" in text
    assert "c" * 64 in text and "d" * 64 in text
    assert reverse("admin:reconciliation_reconciliationjob_change", args=[mismatch.job_id]) in text
    assert 'name="_save"' not in text  # nothing to save
    assert 'value="mark_resolved"' in text


# --- repair through the admin ---------------------------------------------------------------


def test_the_repair_action_confirms_then_repairs_from_cassandra(
    client, django_user_model, cassandra, target, table_pair
) -> None:
    mapping = table_pair("id text PRIMARY KEY, email text", "id text PRIMARY KEY, email text")
    cassandra.execute(f"INSERT INTO {mapping.cassandra_table} (id, email) VALUES ('r1', 'good')")
    target.execute(f"INSERT INTO public.{mapping.postgres_table} VALUES ('r1', 'bad')")
    mismatch = make_mismatch(make_job(mapping.name), "r1")
    client.force_login(operator(django_user_model, "fixer", *RESOLVER_PERMS, "repair_mismatch"))
    selection = {"action": "repair_from_source", "_selected_action": [mismatch.pk]}

    confirm = client.post(MISMATCHES, selection)
    done = client.post(MISMATCHES, {**selection, "apply": "yes"})

    assert b"upsert it into PostgreSQL" in confirm.content
    assert done.status_code == 302
    assert any(m.startswith(f"Repaired {mapping.name} r1.") for m in messages_of(done))
    assert target.execute(f"SELECT email FROM public.{mapping.postgres_table}").fetchall() == [
        ("good",)
    ]
    mismatch.refresh_from_db()
    assert mismatch.resolution_status == ResolutionStatus.AUTO_RESOLVED


def test_a_failed_repair_shows_the_error_and_leaves_the_mismatch_pending(
    client, django_user_model, cassandra, target, table_pair, settings
) -> None:
    mapping = table_pair("id text PRIMARY KEY, email text", "id text PRIMARY KEY, email text")
    mismatch = make_mismatch(make_job(mapping.name), "r2")
    client.force_login(operator(django_user_model, "fixer", *RESOLVER_PERMS, "repair_mismatch"))
    settings.CASSANDRA = dataclasses.replace(settings.CASSANDRA, port=free_port())
    connections.close_cassandra()
    try:
        done = client.post(
            MISMATCHES,
            {"action": "repair_from_source", "_selected_action": [mismatch.pk], "apply": "yes"},
        )
    finally:
        connections.close_cassandra()

    failures = [m for m in messages_of(done) if m.startswith(f"Repair of {mapping.name} r2 failed")]
    assert len(failures) == 1
    assert "unreachable" in failures[0] and "It stays PENDING." in failures[0]
    mismatch.refresh_from_db()
    assert mismatch.resolution_status == ResolutionStatus.PENDING


# --- jobs -------------------------------------------------------------------------------------


def test_the_job_list_colours_drift_against_the_tables_thresholds(client, alice) -> None:
    TableMapping.objects.create(
        name="orders",
        cassandra_keyspace="ks",
        cassandra_table="orders",
        postgres_schema="public",
        postgres_table="orders",
        warning_threshold=0.1,
        critical_threshold=0.4,
    )
    make_job("orders", drift_percentage=0.5, alert_level=AlertLevel.CRITICAL)
    make_job("users", drift_percentage=0.5)  # default thresholds 1% / 5%
    make_job("sessions", status=JobStatus.RUNNING, completed_at=None, progress=0.4)

    html = client.get(JOBS).content.decode()

    assert html.count("cdc-drift-critical") == 1
    assert html.count("cdc-drift-none") >= 2  # users' 0.5% is fine, the running job has none
    assert '<progress value="0.400" max="1"' in html
    assert "40%" in html


def test_the_job_page_shows_its_first_50_mismatches_and_links_to_all_of_them(client, alice) -> None:
    job = make_job(
        mismatch_count=60, schema_warnings=["Column 'nickname' exists only in Cassandra."]
    )
    for i in range(60):
        make_mismatch(job, f"key-{i:03d}")

    html = client.get(
        reverse("admin:reconciliation_reconciliationjob_change", args=[job.job_id])
    ).content.decode()

    assert len(re.findall(r">key-\d{3}</a>", html)) == 50
    assert "Showing 50 of 60" in html
    assert f"{MISMATCHES}?job={job.job_id}" in html
    assert "Column &#x27;nickname&#x27; exists only in Cassandra." in html


def test_run_again_now_starts_a_job_for_the_same_table_and_strategy_and_queues_it(
    client, django_user_model, django_capture_on_commit_callbacks
) -> None:
    old = make_job(
        "orders", validation_strategy=ValidationStrategy.SAMPLE, parameters={"sample_size": 50}
    )
    client.force_login(
        operator(django_user_model, "runner", "view_reconciliationjob", "add_reconciliationjob")
    )

    selection = {"action": "run_again_now", "_selected_action": [old.pk]}

    form_page = client.post(JOBS, selection)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client.post(JOBS, {**selection, "apply": "yes", "sample_size": "50"})

    assert form_page.status_code == 200
    assert form_page.context["form"].initial["sample_size"] == 50  # prefilled from the job
    assert response.status_code == 302
    new = ReconciliationJob.objects.exclude(pk=old.pk).get()
    assert (new.table_name, new.validation_strategy, new.status) == (
        "orders",
        ValidationStrategy.SAMPLE,
        JobStatus.RUNNING,
    )
    assert new.parameters == {"sample_size": 50}
    assert new.requested_by.username == "runner"
    assert len(queued) == 1  # enqueued once the transaction commits


def test_run_again_now_reports_a_job_already_running(client, django_user_model) -> None:
    old = make_job("orders")
    running = make_job("orders", status=JobStatus.RUNNING, completed_at=None)
    client.force_login(
        operator(django_user_model, "runner", "view_reconciliationjob", "add_reconciliationjob")
    )

    response = client.post(
        JOBS,
        {"action": "run_again_now", "_selected_action": [old.pk], "apply": "yes"},
        follow=True,
    )

    assert any("already running" in m and str(running.job_id) in m for m in messages_of(response))
    assert ReconciliationJob.objects.count() == 2
