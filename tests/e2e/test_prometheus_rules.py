"""The Prometheus and Alertmanager files in docker/monitoring pass the real tools.

promtool and amtool come from Debian's `prometheus` and `prometheus-alertmanager` packages
(`make test` installs them through scripts/ensure-packages); a missing tool FAILS the test.
The alert rules' behaviour (thresholds, per-table thresholds, `for: 5m`, the failed-jobs
window) is unit-tested by docker/monitoring/tests/alerts-test.yml, run here.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.monitoring_support import MONITORING, exported_names
from tests.support import require_binary

pytestmark = pytest.mark.e2e

ALERTS = MONITORING / "prometheus-alerts.yml"


def run(tool: str, package: str, *args: str, cwd: Path = MONITORING) -> str:
    result = subprocess.run(
        [require_binary(tool, package), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{tool} {' '.join(args)} failed:\n{output}"
    return output


def rules() -> list[dict]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_promtool_checks_the_alert_rules() -> None:
    out = run("promtool", "prometheus", "check", "rules", "prometheus-alerts.yml")
    assert "SUCCESS: 4 rules found" in out


def test_the_alert_rule_unit_tests_pass() -> None:
    out = run("promtool", "prometheus", "test", "rules", "tests/alerts-test.yml")
    assert "SUCCESS" in out and "FAILED" not in out


def test_promtool_checks_the_prometheus_config_and_its_rule_file() -> None:
    out = run("promtool", "prometheus", "check", "config", "prometheus.yml")
    assert "SUCCESS: 1 rule files found" in out
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    assert config["rule_files"] == ["prometheus-alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["cdcrecon"]["static_configs"][0]["targets"] == ["web:8080"]
    assert jobs["cdcrecon"].get("metrics_path", "/metrics") == "/metrics"
    alertmanagers = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanagers == ["alertmanager:9093"]


def test_the_alerts_are_the_guides_with_severity_for_and_annotations() -> None:
    by_name = {rule["alert"]: rule for rule in rules()}
    assert set(by_name) == {
        "ReconciliationDriftWarning",
        "ReconciliationDriftCritical",
        "ReconciliationJobFailed",
        "ReconciliationAutoRepairCapped",
    }
    severities = {name: rule["labels"]["severity"] for name, rule in by_name.items()}
    assert severities == {
        "ReconciliationDriftWarning": "warning",
        "ReconciliationDriftCritical": "critical",
        "ReconciliationJobFailed": "warning",
        "ReconciliationAutoRepairCapped": "warning",
    }
    for name, rule in by_name.items():
        assert rule["for"] == "5m", name
        notes = rule["annotations"]
        assert {"summary", "description"} <= set(notes), name
        assert "GET /reconciliation/mismatches?table=" in notes["description"], name
        assert "$value" in notes["summary"], name
    for name in ("ReconciliationDriftWarning", "ReconciliationDriftCritical"):
        notes = by_name[name]["annotations"]
        assert "{{ $labels.table }}" in notes["summary"]
        assert "mismatches?table={{ $labels.table }}" in notes["description"]
        assert "_threshold" in by_name[name]["expr"]  # per-table thresholds, not constants
    assert 'status="FAILED"' in by_name["ReconciliationJobFailed"]["expr"]
    assert "[1h]" in by_name["ReconciliationJobFailed"]["expr"]
    capped = by_name["ReconciliationAutoRepairCapped"]
    assert "cdc_reconciliation_auto_repair_capped_total" in capped["expr"]
    assert "{{ $labels.table }}" in capped["annotations"]["summary"]


def test_the_rules_only_read_metrics_the_app_exports() -> None:
    known = exported_names()
    for rule in rules():
        texts = [rule["expr"], *rule["annotations"].values()]
        used = {name for text in texts for name in re.findall(r"cdc_reconciliation_\w+", text)}
        assert used, rule["alert"]
        assert used <= known, f"{rule['alert']} reads unknown metrics {used - known}"


def test_amtool_checks_the_alertmanager_config() -> None:
    out = run("amtool", "prometheus-alertmanager", "check-config", "alertmanager.yml")
    assert "SUCCESS" in out
    config = yaml.safe_load((MONITORING / "alertmanager.yml").read_text())
    assert config["route"]["group_by"] == ["alertname", "table"]
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    slack = receivers["team-alerts"]["slack_configs"][0]
    assert slack["channel"] == "#cdc-alerts"
    assert slack["api_url"] == "https://hooks.slack.com/services/REPLACE/ME/PLEASE"
    assert slack["title"] == "{{ .GroupLabels.alertname }}"
    assert slack["text"] == "{{ range .Alerts }}{{ .Annotations.description }}{{ end }}"
    assert receivers["oncall-email"]["email_configs"][0]["to"]
    assert config["global"]["smtp_smarthost"]


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (
            ["severity=critical", "alertname=ReconciliationDriftCritical", "table=users"],
            "oncall-email,team-alerts",
        ),  # fmt: skip
        (
            ["severity=warning", "alertname=ReconciliationDriftWarning", "table=users"],
            "team-alerts",
        ),  # fmt: skip
        (["severity=warning", "alertname=ReconciliationJobFailed"], "team-alerts"),
    ],
)
def test_alertmanager_routes_by_severity(labels: list[str], receivers: str) -> None:
    out = run(
        "amtool",
        "prometheus-alertmanager",
        "config",
        "routes",
        "test",
        "--config.file=alertmanager.yml",
        *labels,
    )
    lines = [line for line in out.splitlines() if line and not line.startswith("Warning:")]
    assert lines == [receivers]
