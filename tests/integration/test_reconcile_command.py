"""``manage.py reconcile``: run as a real process against the test databases."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys

import pytest
from django.db import connection

from reconciliation.choices import JobStatus
from reconciliation.models import ReconciliationJob
from tests.guide import (
    JOB_DETAIL_MISMATCH_FIELDS,
    JOB_EXTRA_FIELDS,
    JOB_FIELDS,
    MISMATCH_LEDGER_FIELDS,
)
from tests.support import REPO

pytestmark = pytest.mark.django_db(transaction=True)


def reconcile(*args: str, target_url: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the command in a child process that uses pytest-django's test database."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
    }
    if target_url is not None:
        env["TEST_TARGET_DATABASE_URL"] = target_url
    return subprocess.run(
        [sys.executable, "manage.py", "reconcile", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def users(cassandra, target, table_pair):
    mapping = table_pair(
        "id text PRIMARY KEY, email text, updated_at timestamp",
        "id text PRIMARY KEY, email text, updated_at timestamptz, _cdc_lsn bigint",
    )
    for i in range(4):
        cassandra.execute(
            f"INSERT INTO {mapping.name} (id, email) VALUES (%s, %s)", (f"u{i}", f"{i}@x")
        )
    for i in range(3):
        target.execute(
            f"INSERT INTO public.{mapping.name} (id, email) VALUES (%s, %s)", (f"u{i}", f"{i}@x")
        )
    return mapping


def test_it_runs_a_manual_checksum_job_and_prints_a_summary(users) -> None:
    result = reconcile(users.name)

    assert result.returncode == 0, result.stderr
    assert "COMPLETED" in result.stdout
    assert "mismatches: 1 (MISSING_IN_POSTGRES 1)" in result.stdout
    assert "drift: 25%" in result.stdout
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    job = ReconciliationJob.objects.get(table_name=users.name)
    assert (job.job_type, job.validation_strategy, job.status) == (
        "MANUAL",
        "CHECKSUM",
        "COMPLETED",
    )


def test_json_prints_only_the_job_as_the_api_returns_it(users) -> None:
    result = reconcile(users.name, "--json")

    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert set(body) == JOB_FIELDS | JOB_EXTRA_FIELDS | {"mismatches"}
    assert body["table_name"] == users.name
    assert body["status"] == "COMPLETED"
    assert (body["cassandra_row_count"], body["postgres_row_count"]) == (4, 3)
    assert body["mismatch_count"] == 1
    assert body["drift_percentage"] == 25.0
    assert body["alert_fired"] is True
    assert body["started_at"].endswith("Z") and body["completed_at"].endswith("Z")
    (mismatch,) = body["mismatches"]
    assert set(mismatch) == JOB_DETAIL_MISMATCH_FIELDS | MISMATCH_LEDGER_FIELDS
    assert mismatch["primary_key_value"] == "u3"
    assert mismatch["mismatch_type"] == "MISSING_IN_POSTGRES"
    assert len(mismatch["cassandra_checksum"]) == 64 and mismatch["postgres_checksum"] is None
    assert mismatch["detected_at"].endswith("Z")
    assert mismatch["resolution_status"] == "PENDING"
    assert body["job_id"] == str(ReconciliationJob.objects.get(table_name=users.name).job_id)


def test_each_strategy_can_be_chosen(users) -> None:
    for strategy in ("ROW_COUNT", "TIMESTAMP_RANGE", "SAMPLE"):
        result = reconcile(users.name, "--strategy", strategy, "--json")
        assert result.returncode == 0, result.stderr
        body = json.loads(result.stdout)
        assert body["validation_strategy"] == strategy
        if strategy == "SAMPLE":  # not split into segments
            assert (body["segments_total"], body["segments_done"]) == (0, 0)
        else:  # every segment done, through the same segment code as the workers
            assert body["segments_done"] == body["segments_total"] > 0


def test_on_a_terminal_the_progress_bar_counts_the_segments_done(users) -> None:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
    }
    terminal, stderr = pty.openpty()  # stderr is a terminal: the bar is drawn
    try:
        result = subprocess.run(
            [sys.executable, "manage.py", "reconcile", users.name, "--json"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            timeout=120,
        )
    finally:
        os.close(stderr)
    drawn = b""
    while True:
        try:
            chunk = os.read(terminal, 65536)
        except OSError:  # EIO: the other end is closed and everything was read
            break
        if not chunk:
            break
        drawn += chunk
    os.close(terminal)

    assert result.returncode == 0, drawn.decode(errors="replace")
    total = json.loads(result.stdout)["segments_total"]
    # The terminal ends the bar's line with \r\n; the bar redraws itself after a \r.
    last = drawn.decode().replace("\r\n", "\n").rstrip("\n").split("\r")[-1]
    assert re.fullmatch(rf".* \[#{{30}}\] 100%  segments {total}/{total}", last), drawn


def test_the_progress_bar_shows_percent_and_segments_and_skips_repeats() -> None:
    from reconciliation.management.commands.reconcile import ProgressBar

    stream = io.StringIO()
    bar = ProgressBar(stream, "users CHECKSUM")

    bar(0.0, 0, 8)
    bar(0.001, 0, 8)  # same percent, same segments: not redrawn
    bar(0.5, 4, 8)
    bar(1.0, 8, 8)
    bar.close()

    lines = stream.getvalue().split("\r")[1:]
    assert lines == [
        "users CHECKSUM [------------------------------]   0%  segments 0/8",
        "users CHECKSUM [###############---------------]  50%  segments 4/8",
        "users CHECKSUM [##############################] 100%  segments 8/8\n",
    ]


def test_a_job_without_segments_shows_only_the_percent() -> None:
    from reconciliation.management.commands.reconcile import ProgressBar

    stream = io.StringIO()
    bar = ProgressBar(stream, "users SAMPLE")

    bar(0.25, 0, 0)

    assert stream.getvalue() == "\rusers SAMPLE [#######-----------------------]  25%"


def test_a_window_and_a_sample_size_reach_the_job(users) -> None:
    windowed = reconcile(
        users.name,
        "--strategy",
        "TIMESTAMP_RANGE",
        "--from",
        "2025-11-25T09:00:00Z",
        "--to",
        "2025-11-25T10:00:00+00:00",
    )
    sampled = reconcile(users.name, "--strategy", "SAMPLE", "--sample-size", "7")

    assert windowed.returncode == 0, windowed.stderr
    assert sampled.returncode == 0, sampled.stderr
    jobs = {
        j.validation_strategy: j for j in ReconciliationJob.objects.filter(table_name=users.name)
    }
    assert jobs["TIMESTAMP_RANGE"].parameters == {
        "from": "2025-11-25T09:00:00Z",
        "to": "2025-11-25T10:00:00Z",
    }
    assert jobs["SAMPLE"].parameters == {"sample_size": 7}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no_such_table"], "'no_such_table' is not registered"),
        (["{table}", "--strategy", "BOGUS"], "Unknown validation strategy"),
        (["{table}", "--strategy", "TIMESTAMP_RANGE", "--from", "yesterday"], "ISO 8601"),
        (
            ["{table}", "--strategy", "TIMESTAMP_RANGE", "--from", "2025-11-25T10:00:00"],
            "time zone",
        ),
        (
            [
                "{table}",
                "--strategy",
                "TIMESTAMP_RANGE",
                "--from",
                "2025-11-25T10:00:00Z",
                "--to",
                "2025-11-25T09:00:00Z",
            ],
            "earlier than",
        ),
        (["{table}", "--strategy", "SAMPLE", "--sample-size", "0"], "sample_size"),
        (["{table}", "--strategy", "SAMPLE", "--sample-size", "many"], "whole number"),
        (["{table}", "--sample-size", "10"], "only to SAMPLE"),
        (["{table}", "--unknown-flag"], "unrecognized arguments"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_and_create_no_job(users, args, message) -> None:
    result = reconcile(*[a.format(table=users.name) for a in args])

    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""
    assert not ReconciliationJob.objects.exists()


def test_a_failed_job_exits_1_and_says_why(users, table_pair) -> None:
    broken = table_pair("id text, seq int, PRIMARY KEY (id, seq)", "id text")

    result = reconcile(broken.name)

    assert result.returncode == 1
    assert "'seq'" in result.stderr and "missing on the target" in result.stderr
    job = ReconciliationJob.objects.get(table_name=broken.name)
    assert job.status == JobStatus.FAILED


def test_an_unreachable_target_exits_1_with_json_saying_failed(users) -> None:
    result = reconcile(
        users.name, "--json", target_url="postgres://cdcrecon@127.0.0.1:1/warehouse_test_gone"
    )

    assert result.returncode == 1
    assert json.loads(result.stdout)["status"] == "FAILED"
    assert "Target PostgreSQL is unreachable" in json.loads(result.stdout)["error_message"]
    assert "Target PostgreSQL is unreachable" in result.stderr
    job = ReconciliationJob.objects.get(table_name=users.name)
    assert job.status == JobStatus.FAILED
    assert "Target PostgreSQL is unreachable" in job.error_message


def test_a_table_with_a_running_job_exits_1_and_leaves_that_job_alone(users) -> None:
    from reconciliation.jobs import create_job

    running = create_job(users, "CHECKSUM")

    result = reconcile(users.name)

    assert result.returncode == 1
    assert "already running" in result.stderr
    running.refresh_from_db()
    assert running.status == JobStatus.RUNNING
    assert ReconciliationJob.objects.filter(table_name=users.name).count() == 1


def test_the_summary_ends_with_the_findings(cassandra, target, table_pair) -> None:
    mapping = table_pair("id text PRIMARY KEY, email text", "id text PRIMARY KEY, email text")
    for i in range(20):
        cassandra.execute(
            f"INSERT INTO {mapping.name} (id, email) VALUES (%s, %s)", (f"u{i}", f"{i}@x")
        )
        target.execute(
            f"INSERT INTO public.{mapping.name} (id, email) VALUES (%s, %s)",
            (f"u{i}", f"{i}@x" if i % 5 else f"{i}@WRONG"),
        )

    result = reconcile(mapping.name)

    assert result.returncode == 0, result.stderr
    findings = result.stdout.split("  findings:\n", 1)[1]
    assert findings.strip() == (
        "- 4 of 4 DATA_MISMATCH differ only in `email`: a transform that gets this column "
        "wrong. [column_transform]"
    )


def test_it_runs_the_tables_repair_policy_in_place_and_prints_what_it_did(users, target) -> None:
    from reconciliation.models import TableMapping

    TableMapping.objects.filter(pk=users.pk).update(repair_policy="on", repair_min_age_seconds=0)

    result = reconcile(users.name)

    assert result.returncode == 0, result.stderr
    assert "repair policy: on: 1 eligible, repaired 1; skipped 0; failed 0" in result.stdout
    rows = target.execute(f"SELECT id FROM public.{users.name} ORDER BY id").fetchall()
    assert [r[0] for r in rows] == ["u0", "u1", "u2", "u3"]
    job = ReconciliationJob.objects.get(table_name=users.name)
    assert job.repair_summary["repaired"] == 1
