"""The admin in a real browser (Debian's Chromium via Playwright) against a live server,
with real Cassandra and PostgreSQL: overview, filtering, the side-by-side diff, resolving
through the notes form and a repair that fixes the target row.

Screenshots of the overview and of the diff page go to .local/artifacts/.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections
from django.utils import timezone
from playwright.sync_api import expect

from reconciliation.choices import JobStatus, MismatchType, ResolutionStatus, ValidationStrategy
from reconciliation.jobs import create_job, run_in_process
from reconciliation.models import Mismatch, ReconciliationJob
from tests.e2e.conftest import ARTIFACTS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def drifted_table(
    transactional_db: None, cassandra: Any, target: Any, table_pair: Any, django_user_model: Any
) -> tuple[Any, ReconciliationJob]:
    """A table with drift of every kind, found by a real CHECKSUM job, and an operator.

    Requested before ``page``, so everything here is done before the browser starts.
    """
    mapping = table_pair(
        "id text PRIMARY KEY, email text, score int, tags set<text>",
        "id text PRIMARY KEY, email text, score integer, tags text[], "
        "_cdc_operation text NOT NULL DEFAULT 'INSERT'",
    )
    table = mapping.cassandra_table
    for key, email, score in (
        ("u1", "ann@example.com", 1),
        ("u2", "bob@example.com", 2),
        ("u3", "cy@example.com", 3),
        ("u4", "di@example.com", 4),
        ("u5", "ed@example.com", 5),
    ):
        cassandra.execute(
            f"INSERT INTO {table} (id, email, score, tags) "
            f"VALUES ('{key}', '{email}', {score}, {{'vip'}})"
        )
    target.execute(
        f"INSERT INTO public.{table} (id, email, score, tags) VALUES "
        "('u1', 'ann@example.com', 1, '{vip}'), ('u2', 'bob@OLD.example.com', 2, '{vip}'), "
        "('u5', 'ed@example.com', 50, '{vip}'), ('ghost', 'gh@example.com', 9, NULL)"
    )
    now = timezone.now()
    for days_ago, drift in ((6, 0.4), (4, 1.8), (2, 0.9)):  # earlier runs, for the trend
        ReconciliationJob.objects.create(
            table_name=mapping.name,
            validation_strategy=ValidationStrategy.CHECKSUM,
            status=JobStatus.COMPLETED,
            started_at=now - dt.timedelta(days=days_ago),
            completed_at=now - dt.timedelta(days=days_ago),
            drift_percentage=drift,
        )
    job = run_in_process(create_job(mapping, ValidationStrategy.CHECKSUM))
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert job.mismatch_count == 5  # u2, u5 differ; u3, u4 missing in PG; ghost missing in C*
    django_user_model.objects.create_superuser("ops", "ops@example.com", "a-long-password")
    return mapping, job


def query(read: Callable[[], Any]) -> Any:
    """An ORM read from the test body while Playwright runs, its connection closed after.

    Playwright's sync API switches greenlets and Django's connections are per context: a
    connection opened here would otherwise outlive the test and keep the test database
    from being dropped at the end of the run.
    """
    try:
        return read()
    finally:
        connections.close_all()


def test_an_operator_finds_resolves_and_repairs_mismatches_in_the_admin(
    transactional_db, live_server, drifted_table, page, target
) -> None:
    # (the test database is requested first, so the live server stops before it is dropped)
    mapping, job = drifted_table
    table = mapping.cassandra_table
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    # When the operator logs in and opens the overview from the admin index
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "a-long-password")
    page.click("input[type=submit]")
    page.click("text=Drift overview")
    row = page.locator(f'tr[data-table="{mapping.name}"]')
    assert row.locator("svg.cdc-trend circle").count() == 4
    assert f"{job.drift_percentage:.2f}%" in row.inner_text()
    assert row.locator(".cdc-open-counts a").count() == 3  # one link per mismatch type
    page.screenshot(path=str(ARTIFACTS / "admin-overview.png"), full_page=True)

    # ... filters the mismatches of the table by type
    page.goto(f"{live_server.url}/admin/reconciliation/mismatch/?table={mapping.name}")
    page.locator("#changelist-filter a", has_text="Data mismatch").click()
    page.wait_for_url("**mismatch_type__exact=DATA_MISMATCH**")
    keys = page.locator("#result_list tbody th.field-key a")
    expect(keys).to_have_count(2)
    assert sorted(keys.all_inner_texts()) == ["u2", "u5"]

    # ... opens one and sees the differing column highlighted, side by side
    page.locator("#result_list a", has_text="u2").click()
    page.wait_for_url("**/change/**")
    highlighted = page.locator("tr.cdc-differs")
    assert highlighted.count() == 1
    assert highlighted.get_attribute("data-column") == "email"
    assert "bob@example.com" in highlighted.locator("td.cdc-cassandra").inner_text()
    assert "bob@OLD.example.com" in highlighted.locator("td.cdc-postgres").inner_text()
    assert page.locator('tr.cdc-row[data-column="score"].cdc-differs').count() == 0
    page.screenshot(path=str(ARTIFACTS / "admin-mismatch-diff.png"), full_page=True)
    diff_url = page.url

    # ... resolves the two rows missing in PostgreSQL with a note, through the notes form
    page.goto(
        f"{live_server.url}/admin/reconciliation/mismatch/?table={mapping.name}"
        f"&mismatch_type__exact={MismatchType.MISSING_IN_POSTGRES}"
    )
    keys = page.locator("#result_list tbody th.field-key a")
    expect(keys).to_have_count(2)
    assert sorted(keys.all_inner_texts()) == ["u3", "u4"]
    page.check("#action-toggle")
    page.select_option("select[name=action]", "mark_resolved")
    page.click("button[name=index]")
    expect(page.locator("#cdc-notes-form")).to_be_visible()
    page.click("input[name=_confirm]")  # without notes: refused
    assert "Notes are required" in page.locator(".errorlist").inner_text()
    assert "notes are required" in page.locator("ul.messagelist").inner_text()
    page.screenshot(path=str(ARTIFACTS / "admin-notes-refused.png"), full_page=True)
    pending = Mismatch.objects.filter(
        table_name=mapping.name, resolution_status=ResolutionStatus.PENDING
    )
    assert query(pending.count) == 5
    page.fill("textarea[name=notes]", "Backfilled by replaying the CDC topic.")
    page.click("input[name=_confirm]")
    assert "2 mismatch(es) updated" in page.locator("ul.messagelist").inner_text()

    # ... and repairs the email mismatch from Cassandra, from its page
    page.goto(diff_url)
    page.click("button.cdc-repair")
    expect(page.locator("#cdc-repair-form")).to_be_visible()
    page.click("input[name=_confirm]")
    assert "Repaired" in page.locator("ul.messagelist").inner_text()

    # Then the two are resolved with the note, by the operator
    resolved = query(
        lambda: [
            (m.primary_key_value, m.resolution_status, m.resolution_notes, m.resolved_by.username)
            for m in Mismatch.objects.select_related("resolved_by").filter(
                table_name=mapping.name, resolution_status=ResolutionStatus.MANUAL_RESOLVED
            )
        ]
    )
    note = "Backfilled by replaying the CDC topic."
    assert sorted(resolved) == [
        ("u3", ResolutionStatus.MANUAL_RESOLVED, note, "ops"),
        ("u4", ResolutionStatus.MANUAL_RESOLVED, note, "ops"),
    ]
    # ... the target row is fixed in PostgreSQL and the repair closed its mismatch
    assert target.execute(f"SELECT email FROM public.{table} WHERE id = 'u2'").fetchone() == (
        "bob@example.com",
    )
    u2 = query(
        lambda: Mismatch.objects.select_related("resolved_by").get(
            table_name=mapping.name, primary_key_value="u2"
        )
    )
    assert (u2.resolution_status, u2.resolved_by.username) == (
        ResolutionStatus.AUTO_RESOLVED,
        "ops",
    )
    # ... and the other two are untouched
    assert query(pending.count) == 2

    # ... and the job's page lists its mismatches with their new statuses
    page.goto(f"{live_server.url}/admin/reconciliation/reconciliationjob/{job.job_id}/change/")
    expect(page.locator("table.cdc-job-mismatches tbody tr")).to_have_count(5)
    assert "Showing 5 of 5" in page.locator(".cdc-mismatch-more").inner_text()
    page.screenshot(path=str(ARTIFACTS / "admin-job.png"), full_page=True)
