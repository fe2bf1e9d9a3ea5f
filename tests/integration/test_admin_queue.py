"""Working the queue in the admin: every action returns to the operator's filtered list and
offers the next pending mismatch; the list shows what differs; the trigger forms take the
window and sample size; the audit log shows a repair's before and after."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from gdpr.models import AuditAction, AuditLogEntry, StoreStatus
from reconciliation.choices import JobStatus, MismatchType, ResolutionStatus, ValidationStrategy
from reconciliation.models import Mismatch, ReconciliationJob, TableMapping

pytestmark = pytest.mark.django_db

MISMATCHES = reverse("admin:reconciliation_mismatch_changelist")
JOBS = reverse("admin:reconciliation_reconciliationjob_changelist")
MAPPINGS = reverse("admin:reconciliation_tablemapping_changelist")
T0 = dt.datetime(2025, 11, 25, 10, 0, tzinfo=dt.UTC)
FILTERS = "table=users&resolution_status__exact=PENDING"


def operator(django_user_model: Any, name: str, *codenames: str) -> Any:
    user = django_user_model.objects.create_user(name, password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def alice(django_user_model: Any, client: Any) -> Any:
    user = operator(
        django_user_model,
        "alice",
        "view_mismatch",
        "change_mismatch",
        "repair_mismatch",
        "view_reconciliationjob",
    )
    client.force_login(user)
    return user


def make_job(table: str = "users", **fields: Any) -> ReconciliationJob:
    defaults: dict[str, Any] = {
        "validation_strategy": ValidationStrategy.CHECKSUM,
        "status": JobStatus.COMPLETED,
        "completed_at": timezone.now(),
    }
    return ReconciliationJob.objects.create(table_name=table, **{**defaults, **fields})


def make_mismatch(
    job: ReconciliationJob, key: str, age_minutes: int = 0, **fields: Any
) -> Mismatch:
    defaults: dict[str, Any] = {
        "mismatch_type": MismatchType.DATA_MISMATCH,
        "cassandra_data": {"id": key, "email": f"{key}@new.example", "score": 1, "name": "A"},
        "postgres_data": {"id": key, "email": f"{key}@old.example", "score": 1, "name": "B"},
        "cassandra_checksum": "c" * 64,
        "postgres_checksum": "d" * 64,
        "detected_at": T0 - dt.timedelta(minutes=age_minutes),
        "first_seen_at": T0 - dt.timedelta(minutes=age_minutes),
        "last_seen_at": T0 - dt.timedelta(minutes=age_minutes),
    }
    return Mismatch.objects.create(
        job=job, table_name=job.table_name, primary_key_value=key, **{**defaults, **fields}
    )


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def queue() -> dict[str, Mismatch]:
    """Three pending users mismatches (newest first: u1, u2, u3) and one orders mismatch."""
    users = make_job("users")
    return {
        "u1": make_mismatch(users, "u1", age_minutes=1),
        "u2": make_mismatch(users, "u2", age_minutes=2),
        "u3": make_mismatch(users, "u3", age_minutes=3),
        "o1": make_mismatch(make_job("orders"), "o1", age_minutes=0),
    }


def change_url(mismatch: Mismatch, filters: str = FILTERS) -> str:
    url = reverse("admin:reconciliation_mismatch_change", args=[mismatch.pk])
    return f"{url}?{urlencode({'_changelist_filters': filters})}"


def from_change_page(action: str, mismatch: Mismatch, **extra: str) -> dict[str, Any]:
    """What the change page's action button posts (and its intermediate form re-posts)."""
    return {
        "action": action,
        "_selected_action": [mismatch.pk],
        "_changelist_filters": FILTERS,
        **extra,
    }


def test_the_change_page_keeps_the_list_filters_and_links_the_next_pending(
    client, alice, queue
) -> None:
    html = client.get(change_url(queue["u1"])).content.decode()

    # Every action form carries the operator's filters back to the list.
    assert html.count('name="_changelist_filters" value="table=users&amp;') >= 3
    next_link = re.search(r'id="cdc-next-pending" href="([^"]+)"', html).group(1)
    assert next_link.replace("&amp;", "&") == change_url(queue["u2"])
    back = re.search(r'class="button cdc-back" href="([^"]+)"', html).group(1)
    assert back.replace("&amp;", "&") == f"{MISMATCHES}?{FILTERS}"


@pytest.mark.parametrize(
    ("action", "status"),
    [
        ("mark_resolved", ResolutionStatus.MANUAL_RESOLVED),
        ("mark_ignored", ResolutionStatus.IGNORED),
    ],
)
def test_resolving_from_the_change_page_returns_to_the_filtered_list_and_offers_the_next(
    client, alice, queue, action, status
) -> None:
    notes_page = client.post(MISMATCHES, from_change_page(action, queue["u1"]))
    assert b'name="_changelist_filters" value="table=users&amp;' in notes_page.content

    response = client.post(
        MISMATCHES, from_change_page(action, queue["u1"], apply="yes", notes="done")
    )

    assert response.status_code == 302
    assert response["Location"] == f"{MISMATCHES}?{FILTERS}"
    queue["u1"].refresh_from_db()
    assert queue["u1"].resolution_status == status
    (offer,) = [m for m in messages_of(response) if m.startswith("Next pending")]
    assert change_url(queue["u2"]).replace("&", "&amp;") in offer
    assert "users u2" in offer


def test_an_action_from_the_filtered_list_returns_to_it(client, alice, queue) -> None:
    listed = f"{MISMATCHES}?{FILTERS}"

    response = client.post(
        listed,
        {
            "action": "mark_ignored",
            "_selected_action": [queue["u2"].pk, queue["u3"].pk],
            "apply": "yes",
            "notes": "known test rows",
        },
    )

    assert response.status_code == 302
    assert parse_qs(urlsplit(response["Location"]).query) == parse_qs(FILTERS)
    (offer,) = [m for m in messages_of(response) if m.startswith("Next pending")]
    assert "users u1" in offer  # not o1: another table, outside the filtered list


def test_no_next_pending_is_offered_when_the_list_is_worked_off(client, alice, queue) -> None:
    for key in ("u2", "u3"):
        queue[key].resolve(alice, ResolutionStatus.IGNORED, "known")

    response = client.post(
        MISMATCHES, from_change_page("mark_resolved", queue["u1"], apply="yes", notes="fixed")
    )

    assert response["Location"] == f"{MISMATCHES}?{FILTERS}"
    assert not [m for m in messages_of(response) if m.startswith("Next pending")]


def test_a_failed_repair_also_returns_to_the_filtered_list(client, alice, queue) -> None:
    # "users" is not registered: the repair fails before touching any store.
    response = client.post(
        MISMATCHES, from_change_page("repair_from_source", queue["u1"], apply="yes")
    )

    assert response.status_code == 302
    assert response["Location"] == f"{MISMATCHES}?{FILTERS}"
    assert any("Repair of users u1 failed" in m for m in messages_of(response))
    queue["u1"].refresh_from_db()
    assert queue["u1"].resolution_status == ResolutionStatus.PENDING


def test_re_check_returns_to_the_filtered_list(client, alice, queue) -> None:
    response = client.post(MISMATCHES, from_change_page("recheck_now", queue["u1"]))

    assert response.status_code == 302
    assert response["Location"] == f"{MISMATCHES}?{FILTERS}"
    assert any("Re-check" in m or "Re-checked" in m for m in messages_of(response))


def test_the_list_shows_which_columns_differ_and_when_last_seen(client, alice) -> None:
    job = make_job("users")
    make_mismatch(job, "u1")
    make_mismatch(
        job,
        "u2",
        mismatch_type=MismatchType.MISSING_IN_POSTGRES,
        postgres_data=None,
        postgres_checksum=None,
    )

    html = client.get(MISMATCHES).content.decode()

    differs = re.findall(r'<span class="cdc-differs" title="([^"]*)">', html)
    assert differs == ["email, name"]
    assert "whole row" in html
    assert "Last seen" in html
    assert "2025-11-25 10:00" in html


def test_excluded_columns_are_not_listed_as_differing(client, alice) -> None:
    TableMapping.objects.create(
        name="users",
        cassandra_keyspace="ks",
        cassandra_table="users",
        postgres_schema="public",
        postgres_table="users",
        excluded_columns=["name"],
    )
    make_mismatch(make_job("users"), "u1")

    html = client.get(MISMATCHES).content.decode()

    assert re.findall(r'<span class="cdc-differs" title="([^"]*)">', html) == ["email"]


def test_the_job_filter_lists_only_the_latest_jobs(client, alice) -> None:
    start = timezone.now() - dt.timedelta(days=30)
    jobs = [
        make_job("users" if i % 2 else "orders", started_at=start + dt.timedelta(hours=i))
        for i in range(30)
    ]
    make_mismatch(jobs[0], "k")

    def job_choices(query: str = "") -> set[str]:
        html = client.get(f"{MISMATCHES}?{query}").content.decode()
        return set(re.findall(r"[?&]job=([0-9a-f-]{36})", html))

    listed = job_choices()
    assert len(listed) == 20
    assert str(jobs[-1].job_id) in listed and str(jobs[0].job_id) not in listed
    # With a table chosen, only that table's jobs (all 15 of them here).
    assert job_choices("table=users") == {str(j.job_id) for j in jobs if j.table_name == "users"}


def test_a_post_to_a_read_only_change_page_changes_nothing(client, admin_user) -> None:
    client.force_login(admin_user)
    job = make_job("users")
    mismatch = make_mismatch(job, "u1")

    for url in (
        reverse("admin:reconciliation_mismatch_change", args=[mismatch.pk]),
        reverse("admin:reconciliation_reconciliationjob_change", args=[job.pk]),
    ):
        response = client.post(url, {"table_name": "hacked", "resolution_status": "IGNORED"})
        assert response.status_code == 302
        assert response["Location"] == url

    mismatch.refresh_from_db()
    job.refresh_from_db()
    assert (mismatch.table_name, mismatch.resolution_status, job.table_name) == (
        "users",
        ResolutionStatus.PENDING,
        "users",
    )
    page = client.get(reverse("admin:reconciliation_mismatch_change", args=[mismatch.pk]))
    assert b'name="_save"' not in page.content


# --- trigger forms: window and sample size --------------------------------------------------


@pytest.fixture
def users_mapping() -> TableMapping:
    return TableMapping.objects.create(
        name="users",
        cassandra_keyspace="ks",
        cassandra_table="users",
        postgres_schema="public",
        postgres_table="users",
    )


def test_reconcile_now_shows_the_default_window_and_takes_a_window(
    client, admin_user, users_mapping, django_capture_on_commit_callbacks
) -> None:
    client.force_login(admin_user)
    selection = {"action": "reconcile_now", "_selected_action": [users_mapping.pk]}

    page = client.post(MAPPINGS, selection).content.decode()
    with django_capture_on_commit_callbacks(execute=False):
        client.post(
            MAPPINGS,
            {
                **selection,
                "apply": "yes",
                "strategy": "TIMESTAMP_RANGE",
                "window_from": "2025-11-25T10:00:00Z",
                "window_to": "2025-11-25T12:00:00+01:00",
            },
        )

    for name in ("window_from", "window_to", "sample_size", "strategy"):
        assert f'name="{name}"' in page
    assert re.search(r"Default window: the last \d+ minutes", page)
    job = ReconciliationJob.objects.get(table_name="users")
    assert job.validation_strategy == ValidationStrategy.TIMESTAMP_RANGE
    assert job.parameters == {"from": "2025-11-25T10:00:00Z", "to": "2025-11-25T11:00:00Z"}


def test_reconcile_now_takes_a_sample_size(
    client, admin_user, users_mapping, django_capture_on_commit_callbacks
) -> None:
    client.force_login(admin_user)
    selection = {"action": "reconcile_now", "_selected_action": [users_mapping.pk]}

    with django_capture_on_commit_callbacks(execute=False) as queued:
        client.post(
            MAPPINGS, {**selection, "apply": "yes", "strategy": "SAMPLE", "sample_size": "250"}
        )

    job = ReconciliationJob.objects.get(table_name="users")
    assert (job.validation_strategy, job.parameters) == ("SAMPLE", {"sample_size": 250})
    assert len(queued) == 1


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"strategy": "CHECKSUM", "sample_size": "10"}, "sample_size"),
        ({"strategy": "CHECKSUM", "window_from": "2025-11-25T10:00:00Z"}, "from"),
        ({"strategy": "TIMESTAMP_RANGE", "window_from": "notadate"}, "ISO 8601"),
        (
            {
                "strategy": "TIMESTAMP_RANGE",
                "window_from": "2025-11-25T12:00:00Z",
                "window_to": "2025-11-25T10:00:00Z",
            },
            "earlier",
        ),
        ({"strategy": "SAMPLE", "sample_size": "0"}, "greater than or equal to 1"),
    ],
)
def test_reconcile_now_refuses_options_that_do_not_fit(
    client, admin_user, users_mapping, fields, problem
) -> None:
    client.force_login(admin_user)
    selection = {"action": "reconcile_now", "_selected_action": [users_mapping.pk]}

    response = client.post(MAPPINGS, {**selection, "apply": "yes", **fields})

    assert response.status_code == 200  # the form again, with the error
    assert problem in response.content.decode()
    assert not ReconciliationJob.objects.exists()


def test_run_again_takes_a_new_window(
    client, admin_user, users_mapping, django_capture_on_commit_callbacks
) -> None:
    client.force_login(admin_user)
    old = make_job(
        "users",
        validation_strategy=ValidationStrategy.TIMESTAMP_RANGE,
        parameters={"from": "2025-11-25T09:00:00Z", "to": "2025-11-25T10:00:00Z"},
    )
    selection = {"action": "run_again_now", "_selected_action": [old.pk]}

    page = client.post(JOBS, selection)
    with django_capture_on_commit_callbacks(execute=False):
        client.post(
            JOBS,
            {
                **selection,
                "apply": "yes",
                "window_from": "2025-11-24T00:00:00Z",
                "window_to": "",
            },
        )

    assert page.context["form"].initial["window_from"] == "2025-11-25T09:00:00Z"
    assert "Default window" in page.content.decode()
    new = ReconciliationJob.objects.exclude(pk=old.pk).get()
    assert new.validation_strategy == ValidationStrategy.TIMESTAMP_RANGE
    assert new.parameters == {"from": "2025-11-24T00:00:00Z"}


# --- the audit log ---------------------------------------------------------------------------


def test_a_repair_entry_shows_before_and_after_column_by_column(client, admin_user) -> None:
    client.force_login(admin_user)
    entry = AuditLogEntry.objects.create(
        action=AuditAction.REPAIR,
        requester="alice",
        reason="repair",
        keyspace="ks",
        table="users",
        primary_key="u1",
        completed_at=timezone.now(),
        cassandra_status=StoreStatus.SUCCESS,
        postgres_status=StoreStatus.SUCCESS,
        details={
            "before": {"id": "u1", "email": "old@example.com", "score": 1},
            "after": {"id": "u1", "email": "new@example.com", "score": 1},
            "action": "upsert",
        },
    )

    html = client.get(reverse("admin:gdpr_auditlogentry_change", args=[entry.pk])).content.decode()

    assert "1 of 3 column(s) changed." in html
    changed = re.findall(r'<tr class="cdc-changed" data-column="(\w+)">', html)
    assert changed == ["email"]
    row = re.search(r'data-column="email">(.*?)</tr>', html, re.S).group(1)
    assert "old@example.com" in row and "new@example.com" in row


def test_an_erasure_entry_has_no_before_and_after(client, admin_user) -> None:
    client.force_login(admin_user)
    entry = AuditLogEntry.objects.create(
        action=AuditAction.ERASURE,
        requester="alice",
        reason="gdpr",
        keyspace="ks",
        table="users",
        primary_key="u1",
        details={"mismatches_scrubbed": 2},
    )

    html = client.get(reverse("admin:gdpr_auditlogentry_change", args=[entry.pk])).content.decode()

    assert "Before / after" in html
    assert 'class="cdc-before-after"' not in html
