"""The ledger in the admin (issue 11): verdicts beside estimates, inconclusive runs, and a
difference's history in the mismatch list."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from reconciliation.choices import JobStatus, MismatchType, ResolutionStatus, ValidationStrategy
from reconciliation.models import Mismatch, ReconciliationJob
from tests.factories import TableMappingFactory

pytestmark = pytest.mark.django_db

OVERVIEW = reverse("admin:reconciliation_overview")
MISMATCHES = reverse("admin:reconciliation_mismatch_changelist")
JOBS = reverse("admin:reconciliation_reconciliationjob_changelist")


def make_job(table: str, strategy: str, ago: dt.timedelta, **fields: Any) -> ReconciliationJob:
    started = timezone.now() - ago
    defaults: dict[str, Any] = {"keys_examined": 4000, "mismatch_count": 0}
    return ReconciliationJob.objects.create(
        table_name=table,
        validation_strategy=strategy,
        status=JobStatus.COMPLETED,
        started_at=started,
        completed_at=started + dt.timedelta(seconds=30),
        **{**defaults, **fields},
    )


def verdict_cell(html: str, table: str) -> str:
    row = re.search(rf'<tr class="cdc-table-row" data-table="{table}">(.*?)</tr>', html, re.S)
    assert row, f"no overview row for {table}"
    cell = re.search(r'<td class="cdc-verdict">(.*?)</td>', row.group(1), re.S)
    assert cell
    return cell.group(1)


def test_the_overview_keeps_the_full_check_verdict_beside_a_newer_estimate(admin_client) -> None:
    make_job("sessions", ValidationStrategy.CHECKSUM, dt.timedelta(hours=2), drift_percentage=6.25)
    make_job(
        "sessions",
        ValidationStrategy.SAMPLE,
        dt.timedelta(minutes=10),
        keys_examined=1000,
        drift_percentage=3.71,
        drift_ci_low=2.7,
        drift_ci_high=5.0,
    )

    cell = verdict_cell(admin_client.get(OVERVIEW).content.decode(), "sessions")

    verdict, _, estimates = cell.partition("cdc-estimate")
    assert "cdc-drift-critical" in verdict and "6.25%" in verdict and "full check" in verdict
    assert 'data-strategy="SAMPLE"' in estimates or "SAMPLE" in estimates
    assert "3.71%" in estimates and "2.70–5.00%" in estimates


def test_an_inconclusive_run_shows_no_green_badge(admin_client) -> None:
    TableMappingFactory(name="events")
    job = make_job(
        "events",
        ValidationStrategy.TIMESTAMP_RANGE,
        dt.timedelta(minutes=5),
        keys_examined=0,
        drift_percentage=None,
    )

    overview = admin_client.get(OVERVIEW).content.decode()
    jobs = admin_client.get(JOBS).content.decode()
    detail = admin_client.get(
        reverse("admin:reconciliation_reconciliationjob_change", args=[job.pk])
    ).content.decode()

    assert "cdc-drift-none" in verdict_cell(overview, "events")  # a dash, not a green 0%
    for html in (overview, jobs, detail):
        assert "cdc-inconclusive" in html
        assert "cdc-completed" not in html  # no green COMPLETED badge
        assert "0.00%" not in html


def test_the_mismatch_list_shows_times_seen_last_seen_and_the_reappeared_marker(
    admin_client,
) -> None:
    job = make_job("users", ValidationStrategy.CHECKSUM, dt.timedelta(hours=1))
    Mismatch.objects.create(
        job=job,
        table_name="users",
        primary_key_value="user-7",
        mismatch_type=MismatchType.DATA_MISMATCH,
        times_seen=4,
        reappeared_at=timezone.now(),
        last_job=job,
        resolution_status=ResolutionStatus.PENDING,
    )
    Mismatch.objects.create(
        job=job,
        table_name="users",
        primary_key_value="user-8",
        mismatch_type=MismatchType.DATA_MISMATCH,
    )

    html = admin_client.get(MISMATCHES).content.decode()

    assert "4×" in html and "1×" in html
    assert html.count('class="cdc-reappeared"') == 1
    assert "column-last_seen" in html
