"""Working the queue in a real browser at 1366x768 (a common laptop screen), after three
real CHECKSUM runs over planted drift: the list pages keep their signal columns on screen,
and an operator resolves from a filtered list, comes back to it and takes the next pending.

Screenshots go to .local/artifacts/ (queue-*.png).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connections
from playwright.sync_api import expect

from reconciliation.choices import JobStatus, ResolutionStatus, ValidationStrategy
from reconciliation.jobs import create_job, run_in_process
from reconciliation.models import Mismatch, ReconciliationJob
from tests.e2e.conftest import ARTIFACTS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

VIEWPORT = WIDTH, HEIGHT = 1366, 768


@pytest.fixture
def three_runs(
    transactional_db: None, cassandra: Any, target: Any, table_pair: Any, django_user_model: Any
) -> Any:
    mapping = table_pair(
        "id text PRIMARY KEY, email text, score int, nickname text",
        "id text PRIMARY KEY, email text, score integer, nickname text, "
        "_cdc_operation text NOT NULL DEFAULT 'INSERT'",
    )
    table = mapping.cassandra_table
    for i in range(1, 9):
        cassandra.execute(
            f"INSERT INTO {table} (id, email, score, nickname) "
            f"VALUES ('u{i}', 'user{i}@example.com', {i}, 'n{i}')"
        )
    target.execute(
        f"INSERT INTO public.{table} (id, email, score, nickname) VALUES "
        "('u1', 'user1@example.com', 1, 'n1'), ('u2', 'user2@OLD.example.com', 2, 'n2'), "
        "('u3', 'user3@example.com', 30, 'N3'), ('u4', 'user4@OLD.example.com', 4, 'n4'), "
        "('u5', 'user5@example.com', 5, 'n5'), ('ghost', 'g@example.com', 9, 'g')"
    )
    for _ in range(3):
        job = run_in_process(create_job(mapping, ValidationStrategy.CHECKSUM))
        assert job.status == JobStatus.COMPLETED, job.error_message
    django_user_model.objects.create_superuser("ops", "ops@example.com", "a-long-password")
    return mapping


def right_edge(page: Any, selector: str) -> float:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, f"{selector} is not rendered"
    return float(box["x"] + box["width"])


def assert_on_screen(page: Any, *columns: str) -> None:
    """Each column's header ends inside the visible part of the list (the admin scrolls a
    wide table inside its ``.results`` box) and of the viewport: no scrolling to see it."""
    visible = min(WIDTH, right_edge(page, "#changelist-form .results"))
    for column in columns:
        edge = right_edge(page, f"#result_list thead th.column-{column}")
        assert edge <= visible, f"column {column!r} ends at {edge:.0f}px, beyond {visible:.0f}px"


def test_the_queue_at_1366_pixels(transactional_db, live_server, three_runs, page) -> None:
    mapping = three_runs
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    admin = f"{live_server.url}/admin/reconciliation"

    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "a-long-password")
    page.click("input[type=submit]")

    # The job list keeps drift and alert on screen, the mappings their open mismatches.
    page.goto(f"{admin}/reconciliationjob/")
    assert_on_screen(page, "drift", "alert", "mismatches_link")
    page.screenshot(path=str(ARTIFACTS / "queue-jobs-1366.png"))
    page.goto(f"{admin}/tablemapping/")
    assert_on_screen(page, "last_job", "open_mismatches_link")
    page.screenshot(path=str(ARTIFACTS / "queue-mappings-1366.png"))

    # The pending mismatches of the table, after three runs: what differs, when last seen.
    listed = f"{admin}/mismatch/?table={mapping.name}&resolution_status__exact=PENDING"
    page.goto(listed)
    assert_on_screen(page, "status_badge", "differs", "last_seen")
    page.screenshot(path=str(ARTIFACTS / "queue-mismatches-1366.png"), full_page=True)
    u2 = page.locator("#result_list tbody tr", has_text="u2").first
    assert u2.locator(".cdc-differs").inner_text() == "email"
    u3 = page.locator("#result_list tbody tr", has_text="u3").first
    assert u3.locator(".cdc-differs").inner_text() == "nickname, score"

    # The operator opens the newest, resolves it from its page ...
    page.locator("#result_list tbody th.field-key a").first.click()
    page.wait_for_url("**/change/**")
    page.screenshot(path=str(ARTIFACTS / "queue-diff-1366.png"), full_page=True)
    first_key = page.locator(".field-primary_key_value .readonly").inner_text().strip()
    page.click("button.cdc-resolve")
    expect(page.locator("#cdc-notes-form")).to_be_visible()
    page.fill("textarea[name=notes]", "Fixed by a manual sync.")
    page.click("input[name=_confirm]")

    # ... lands back on the same filtered list, and takes the next pending one from there.
    page.wait_for_url("**/mismatch/?**")
    assert f"table={mapping.name}" in page.url and "resolution_status__exact=PENDING" in page.url
    assert "1 mismatch(es) updated" in page.locator("ul.messagelist").inner_text()
    page.click("ul.messagelist a.cdc-next-pending")
    page.wait_for_url("**/change/**")
    next_key = page.locator(".field-primary_key_value .readonly").inner_text().strip()
    assert next_key != first_key
    expect(page.locator("#cdc-next-pending")).to_be_visible()

    closed = Mismatch.objects.filter(
        table_name=mapping.name, primary_key_value=first_key
    ).values_list("resolution_status", flat=True)
    try:
        assert ResolutionStatus.MANUAL_RESOLVED in list(closed)
        assert ReconciliationJob.objects.filter(table_name=mapping.name).count() == 3
    finally:
        connections.close_all()
