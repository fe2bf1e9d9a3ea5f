"""The OpenAPI schema validates, and a client generated from it (openapi-python-client)
triggers a job and reads it back from a live server."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from django.core.management import call_command

from cdcrecon.api.tokens import issue_token
from reconciliation.models import JobFinding
from tests.factories import JobFactory, MismatchFactory, UserFactory

VENV_BIN = Path(sys.executable).parent


def test_the_schema_validates_without_a_single_warning(tmp_path) -> None:
    out = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))

    text = out.read_text()
    for path in (
        "/reconciliation/trigger:",
        "/reconciliation/jobs:",
        "/reconciliation/jobs/{job_id}:",
        "/reconciliation/jobs/{job_id}/resume:",
        "/reconciliation/mismatches:",
        "/reconciliation/mismatches/{mismatch_id}/resolve:",
    ):
        assert path in text


def test_swagger_ui_is_served_from_local_static_files(client) -> None:
    response = client.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page
    assert "cdn.jsdelivr" not in page and "unpkg.com" not in page


def generate_client(schema_url: str, directory: Path):
    schema = directory / "schema.json"
    with urllib.request.urlopen(schema_url, timeout=30) as response:  # noqa: S310 - local server
        schema.write_bytes(response.read())
    config = directory / "config.json"
    config.write_text(
        json.dumps(
            {"project_name_override": "cdcrecon-client", "package_name_override": "cdcrecon_client"}
        )
    )
    result = subprocess.run(
        [
            str(VENV_BIN / "openapi-python-client"),
            "generate",
            "--path",
            str(schema),
            "--config",
            str(config),
            "--meta",
            "none",
            "--output-path",
            str(directory / "cdcrecon_client"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(directory))
    importlib.invalidate_caches()
    return importlib.import_module("cdcrecon_client")


@pytest.mark.django_db(transaction=True)
def test_a_generated_client_triggers_a_job_and_reads_it_back(
    live_server, celery_broker, tmp_path
) -> None:
    user = UserFactory(is_superuser=True)
    token = issue_token(user)[1]
    package = generate_client(f"{live_server.url}/api/schema/?format=json", tmp_path)
    api = importlib.import_module("cdcrecon_client.api.reconciliation")
    models = importlib.import_module("cdcrecon_client.models")
    trigger = importlib.import_module(f"{api.__name__}.trigger_reconciliation")
    get_job = importlib.import_module(f"{api.__name__}.get_job")
    list_jobs = importlib.import_module(f"{api.__name__}.list_jobs")
    client = package.AuthenticatedClient(base_url=live_server.url, token=token)

    triggered = trigger.sync_detailed(
        client=client,
        body=models.TriggerRequest(
            tables=["users"], validation_strategy=models.ValidationStrategyEnum.ROW_COUNT
        ),
    )

    assert triggered.status_code == 202, triggered.content
    (job_id,) = triggered.parsed.job_ids
    assert isinstance(job_id, uuid.UUID)
    job = get_job.sync(client=client, job_id=job_id)
    assert isinstance(job, models.JobDetail)
    assert (job.job_id, job.table_name, job.job_type.value) == (job_id, "users", "MANUAL")
    assert job.validation_strategy.value == "ROW_COUNT"
    assert job.status.value in {"RUNNING", "COMPLETED", "FAILED"}
    assert job.mismatches == []
    page = list_jobs.sync(client=client, table="users")
    assert (page.total, [j.job_id for j in page.jobs]) == (1, [job_id])

    busy = JobFactory(table_name="orders", status="RUNNING")
    conflict = trigger.sync_detailed(
        client=client,
        body=models.TriggerRequest(
            tables=["orders"], validation_strategy=models.ValidationStrategyEnum.CHECKSUM
        ),
    )
    assert conflict.status_code == 409
    assert json.loads(conflict.content)["job_id"] == str(busy.job_id)

    resume = importlib.import_module(f"{api.__name__}.resume_job")
    failed = JobFactory(table_name="sessions", status="FAILED", validation_strategy="SAMPLE")
    resumed = resume.sync_detailed(client=client, job_id=failed.job_id)
    assert resumed.status_code == 202, resumed.content
    assert isinstance(resumed.parsed, models.Job)
    assert (resumed.parsed.job_id, resumed.parsed.status.value) == (failed.job_id, "RUNNING")
    assert (resumed.parsed.segments_total, resumed.parsed.segments_done) == (0, 0)
    # (A worker may already be running the resumed job: ask about one that cannot change.)
    completed = JobFactory(table_name="sessions", status="COMPLETED")
    again = resume.sync_detailed(client=client, job_id=completed.job_id)
    assert again.status_code == 409
    assert again.parsed.error == "job_not_resumable"
    assert again.parsed.status.value == "COMPLETED"

    # Forensics: a job's and a table's, typed by the schema.
    job_forensics = importlib.import_module(f"{api.__name__}.get_job_forensics")
    table_forensics = importlib.import_module(f"{api.__name__}.get_table_forensics")
    found = JobFactory(table_name="users", status="COMPLETED")
    written = dt.datetime(2026, 11, 20, 10, 2, tzinfo=dt.UTC)
    for i in range(6):
        mismatch = MismatchFactory(
            job=found,
            table_name="users",
            primary_key_value=f"user-{i}",
            mismatch_type="MISSING_IN_POSTGRES",
            source_write_time=written + dt.timedelta(seconds=i),
        )
        JobFinding.objects.create(job=found, mismatch=mismatch, mismatch_type="MISSING_IN_POSTGRES")
    report = job_forensics.sync(client=client, job_id=found.job_id)
    assert isinstance(report, models.Forensics)
    assert (report.total, report.analyzed, report.bucket.value) == (6, 6, "minute")
    assert [f.rule for f in report.findings] == ["pipeline_gap"]
    assert report.findings[0].evidence["missing"] == 6
    assert report.by_type_and_time[0].bucket_start == written.replace(second=0)
    assert report.by_partition[0].count == 1
    ledger = table_forensics.sync(client=client, table="users")
    assert isinstance(ledger, models.Forensics)
    assert (ledger.scope.value, ledger.total) == ("open", 6)
    busy_job = job_forensics.sync_detailed(client=client, job_id=busy.job_id)
    assert busy_job.status_code == 409 and busy_job.parsed.error == "job_running"


@pytest.mark.django_db
def test_the_schema_is_public_but_the_api_is_not(live_server, tmp_path) -> None:
    # The schema itself is public, so a client can be generated without a token.
    with urllib.request.urlopen(f"{live_server.url}/api/schema/?format=json") as response:  # noqa: S310
        assert response.status == 200
    request = urllib.request.Request(f"{live_server.url}/reconciliation/jobs")
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request)  # noqa: S310
    assert error.value.code == 401
