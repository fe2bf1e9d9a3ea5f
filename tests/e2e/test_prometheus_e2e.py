"""A real Prometheus scrapes a real cdcrecon web process and fires the real alert rules.

Everything runs on 127.0.0.1: gunicorn serving cdcrecon (test settings, pytest-django's test
database), and Debian's `prometheus` binary with a generated config (scrape and evaluation
every second) and a copy of docker/monitoring/prometheus-alerts.yml whose `for: 5m` is
shortened to 5 s.  Both are killed in teardown.  Prometheus is asked through its HTTP API.

The first test writes finished jobs as rows (as a worker on another machine leaves them);
the second has a real Celery worker process run a real CHECKSUM job over real Cassandra and
PostgreSQL tables (the worker fixture is the integration suite's, imported from
tests/integration/conftest.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.utils import timezone

from reconciliation.choices import JobStatus, MismatchType, ValidationStrategy
from reconciliation.jobs import create_job, enqueue_job
from reconciliation.models import ReconciliationJob, TableMapping
from tests.monitoring_support import MONITORING
from tests.support import REPO, child_env, free_port, require_binary

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

DEADLINE = 60.0  # seconds, for every wait below


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for(what: str, check: Callable[[], Any], logs: list[Path]) -> Any:
    """Poll ``check`` until it returns something truthy; fail after DEADLINE seconds."""
    deadline = time.monotonic() + DEADLINE
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, ValueError) as exc:  # not listening yet, half-written answer
            last = exc
        else:
            if last:
                return last
        time.sleep(0.5)
    tails = "\n".join(f"--- {log}:\n{log.read_text()[-3000:]}" for log in logs if log.exists())
    pytest.fail(f"Timed out after {DEADLINE:.0f} s waiting for {what}; last: {last!r}\n{tails}")


def start(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: only its processes
            process.wait(timeout=10)


@pytest.fixture
def web(tmp_path: Path) -> Iterator[str]:
    """cdcrecon under gunicorn on a free loopback port; yields its base URL."""
    port = free_port()
    log = tmp_path / "gunicorn.log"
    process = start(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "cdcrecon.wsgi:application",
            f"--bind=127.0.0.1:{port}",
            "--workers=2",
            "--timeout=30",
        ],  # fmt: skip
        log,
        env=child_env(),
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert process.poll() is None, f"gunicorn exited:\n{log.read_text()}"
            return http_get(f"{base}/metrics")[0] == 200

        wait_for("gunicorn to serve /metrics", up, [log])
        yield base
    finally:
        stop(process)


@pytest.fixture
def prometheus(web: str, tmp_path: Path) -> Iterator[str]:
    """Debian's prometheus scraping ``web`` every second with the alert rules; yields its URL."""
    binary = require_binary("prometheus", "prometheus")
    rules = yaml.safe_load((MONITORING / "prometheus-alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["for"] == "5m"
            rule["for"] = "5s"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "alerts.yml")],
        "scrape_configs": [
            {
                "job_name": "cdcrecon",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [web.removeprefix("http://")]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = tmp_path / "prometheus.log"
    process = start(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        log,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert process.poll() is None, f"prometheus exited:\n{log.read_text()}"
            return http_get(f"{base}/-/ready")[0] == 200

        wait_for("prometheus to be ready", ready, [log])
        process.log = log  # type: ignore[attr-defined]
        yield base
    finally:
        stop(process)


def api(prometheus: str, path: str, **params: str) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    status, body = http_get(f"{prometheus}/api/v1/{path}{query}")
    data = json.loads(body)
    assert status == 200 and data["status"] == "success", (status, data)
    return data["data"]


def by_table(data: dict[str, Any]) -> dict[str, float]:
    """{table: value} of an instant query's vector."""
    assert data["resultType"] == "vector", data
    return {item["metric"]["table"]: float(item["value"][1]) for item in data["result"]}


def alerts(prometheus: str) -> dict[tuple[str, str], str]:
    """{(alertname, table): state} of the alerts Prometheus holds now."""
    return {
        (a["labels"]["alertname"], a["labels"].get("table", "")): a["state"]
        for a in api(prometheus, "alerts")["alerts"]
    }


def sample_job(table: str, drift: float, ci_low: float, ci_high: float) -> None:
    """A SAMPLE estimate, newer than the table's other jobs (and with no row counts)."""
    started = timezone.now() - timedelta(minutes=1)
    ReconciliationJob.objects.create(
        table_name=table,
        validation_strategy=ValidationStrategy.SAMPLE,
        status=JobStatus.COMPLETED,
        started_at=started,
        completed_at=started + timedelta(seconds=5),
        keys_examined=1000,
        mismatch_count=round(drift * 10),
        drift_percentage=drift,
        drift_ci_low=ci_low,
        drift_ci_high=ci_high,
    )


def completed_job(table: str, drift: float, cassandra: int, postgres: int) -> None:
    started = timezone.now() - timedelta(minutes=3)
    ReconciliationJob.objects.create(
        table_name=table,
        validation_strategy=ValidationStrategy.ROW_COUNT,
        status=JobStatus.COMPLETED,
        started_at=started,
        completed_at=started + timedelta(seconds=42),
        cassandra_row_count=cassandra,
        postgres_row_count=postgres,
        mismatch_count=abs(cassandra - postgres),
        drift_percentage=drift,
    )


def mapping(name: str, **fields: Any) -> None:
    TableMapping.objects.create(
        name=name,
        cassandra_keyspace="ks",
        cassandra_table=name,
        postgres_schema="public",
        postgres_table=name,
        **fields,
    )


def test_prometheus_scrapes_the_metrics_and_fires_the_drift_alerts(
    prometheus: str, tmp_path: Path
) -> None:
    logs = [tmp_path / "prometheus.log", tmp_path / "gunicorn.log"]
    # e2e_users: 12.5% drift against the default thresholds (1 / 5): critical.
    mapping("e2e_users")
    completed_job("e2e_users", 12.5, 1000, 875)
    # e2e_orders: the same drift, but its own thresholds are 10 / 20: only a warning.
    mapping("e2e_orders", warning_threshold=10.0, critical_threshold=20.0)
    completed_job("e2e_orders", 12.5, 400, 350)
    # A newer SAMPLE of e2e_users estimates 3.71% (95% interval 0.5-9%): it adds its own
    # series and replaces neither the full verdict nor the row counts, and its lower bound
    # (0.5%) alerts nothing by itself.
    sample_job("e2e_users", 3.71, 0.5, 9.0)
    full = 'cdc_reconciliation_drift_percentage{strategy="ROW_COUNT"}'

    def drift_series() -> dict[str, float] | None:
        found = by_table(api(prometheus, "query", query=full))
        return found if {"e2e_users", "e2e_orders"} <= set(found) else None

    assert wait_for("the drift series", drift_series, logs) == {
        "e2e_users": 12.5,
        "e2e_orders": 12.5,
    }
    q = "query"
    sampled = 'cdc_reconciliation_drift_percentage{strategy="SAMPLE"}'
    assert by_table(api(prometheus, q, query=sampled)) == {"e2e_users": 3.71}
    low = 'cdc_reconciliation_drift_ci_low_percentage{strategy="SAMPLE"}'
    assert by_table(api(prometheus, q, query=low)) == {"e2e_users": 0.5}
    assert by_table(api(prometheus, q, query="cdc_reconciliation_cassandra_rows")) == {
        "e2e_users": 1000,
        "e2e_orders": 400,
    }
    assert by_table(api(prometheus, q, query="cdc_reconciliation_postgres_rows")) == {
        "e2e_users": 875,
        "e2e_orders": 350,
    }
    assert by_table(api(prometheus, q, query="cdc_reconciliation_drift_critical_threshold")) == {
        "e2e_users": 5.0,
        "e2e_orders": 20.0,
    }
    completed = 'cdc_reconciliation_jobs_completed_total{status="COMPLETED"}'
    assert by_table(api(prometheus, q, query=completed)) == {"e2e_users": 2, "e2e_orders": 1}
    buckets = 'cdc_reconciliation_duration_seconds_bucket{le="60.0"}'
    assert by_table(api(prometheus, q, query=buckets)) == {"e2e_users": 2, "e2e_orders": 1}
    # The guide's P95 query is accepted (a vector, NaN or empty until jobs complete over time).
    p95 = "histogram_quantile(0.95, rate(cdc_reconciliation_duration_seconds_bucket[5m]))"
    assert api(prometheus, q, query=p95)["resultType"] == "vector"

    def firing() -> dict[tuple[str, str], str] | None:
        now = alerts(prometheus)
        wanted = {
            ("ReconciliationDriftCritical", "e2e_users"),
            ("ReconciliationDriftWarning", "e2e_orders"),
        }
        return now if all(now.get(key) == "firing" for key in wanted) else None

    state = wait_for("ReconciliationDriftCritical and ...Warning to fire", firing, logs)
    assert ("ReconciliationDriftWarning", "e2e_users") not in state
    assert ("ReconciliationDriftCritical", "e2e_orders") not in state
    assert ("ReconciliationJobFailed", "") not in state

    firing_alerts = api(prometheus, "alerts")["alerts"]
    critical = next(a for a in firing_alerts if a["labels"]["alertname"].endswith("Critical"))
    assert critical["labels"]["severity"] == "critical"
    assert float(critical["value"]) == 12.5
    assert (
        "GET /reconciliation/mismatches?table=e2e_users" in critical["annotations"]["description"]
    )
    assert "(critical threshold 5%)" in critical["annotations"]["description"]

    # A newer job finds the table back in sync: the alert resolves.
    completed_job("e2e_users", 0.2, 1000, 998)
    ReconciliationJob.objects.filter(table_name="e2e_users", drift_percentage=0.2).update(
        started_at=timezone.now() - timedelta(seconds=30),
        completed_at=timezone.now() - timedelta(seconds=1),
    )

    def resolved() -> bool:
        return not any(table == "e2e_users" for _, table in alerts(prometheus))

    wait_for("e2e_users' alert to resolve", resolved, logs)
    assert by_table(api(prometheus, q, query=full))["e2e_users"] == pytest.approx(0.2)


def test_a_job_run_by_a_celery_worker_fires_the_critical_alert(
    celery_worker_process: subprocess.Popen,  # noqa: F811
    table_pair: Callable[..., TableMapping],
    cassandra: Any,
    target: Any,
    prometheus: str,
    tmp_path: Path,
) -> None:
    logs = [tmp_path / "prometheus.log", tmp_path / "gunicorn.log", celery_worker_process.log_path]  # type: ignore[attr-defined]
    table = table_pair("id text PRIMARY KEY, v int", "id text PRIMARY KEY, v int")
    for i in range(10):  # 10 rows in Cassandra, 2 of them never reached PostgreSQL: 20 % drift
        cassandra.execute(
            f"INSERT INTO {table.cassandra_table} (id, v) VALUES (%s, %s)", (f"k{i}", i)
        )
        if i < 8:
            target.execute(
                f"INSERT INTO public.{table.postgres_table} (id, v) VALUES (%s, %s)", (f"k{i}", i)
            )

    job = create_job(table, ValidationStrategy.CHECKSUM)
    enqueue_job(job)  # autocommit: sent to the worker's broker at once

    def finished() -> ReconciliationJob | None:
        job.refresh_from_db()
        return job if job.status != JobStatus.RUNNING else None

    wait_for(f"the worker to finish job {job.pk}", finished, logs)
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert job.drift_percentage == pytest.approx(20.0)

    name = table.name
    q = "query"

    def series() -> dict[str, float] | None:
        found = by_table(api(prometheus, q, query="cdc_reconciliation_drift_percentage"))
        return found if name in found else None

    assert wait_for("the drift series of the job", series, logs)[name] == pytest.approx(20.0)
    missing = f'cdc_reconciliation_mismatches_total{{type="{MismatchType.MISSING_IN_POSTGRES}"}}'
    assert by_table(api(prometheus, q, query=missing))[name] == 2
    completed = 'cdc_reconciliation_jobs_completed_total{status="COMPLETED"}'
    assert by_table(api(prometheus, q, query=completed))[name] == 1
    assert by_table(api(prometheus, q, query="cdc_reconciliation_cassandra_rows"))[name] == 10
    assert by_table(api(prometheus, q, query="cdc_reconciliation_postgres_rows"))[name] == 8

    def firing() -> bool:
        return alerts(prometheus).get(("ReconciliationDriftCritical", name)) == "firing"

    wait_for(f"ReconciliationDriftCritical to fire for {name}", firing, logs)
