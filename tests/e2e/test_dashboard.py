"""The Grafana dashboard and its provisioning files are what the guide promises, with valid PromQL.

Every panel query is checked by promtool: the queries (with Grafana's variables replaced by
sample values) are written into a rules file as recording rules and `promtool check rules`
parses them.  promtool comes from Debian's `prometheus` package; missing, the test fails.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring_support import MONITORING, exported_names
from tests.support import require_binary

pytestmark = pytest.mark.e2e

GRAFANA = MONITORING / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "reconciliation.json"

# The guide's six panels, in order, with the panel type each one is; then issue 18's and 19's.
PANELS = [
    ("Drift percentage by table", "timeseries"),
    ("Row count comparison (Cassandra vs PostgreSQL)", "timeseries"),
    ("Mismatch count by type", "bargauge"),
    ("Job success rate", "timeseries"),
    ("Reconciliation duration (P50, P95, P99)", "timeseries"),
    ("Recent reconciliation jobs", "table"),
    ("In-flight differences (within the CDC lag budget)", "timeseries"),
    ("Auto-repairs by result (per hour)", "timeseries"),
]
# Grafana's variables, replaced as Grafana would before sending a query.
VARIABLES = {"$table": ".*", "$__rate_interval": "1m", "$__range": "24h", "$__interval": "15s"}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def queries(dash: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title + refId, expression) for every query of every panel."""
    return [
        (f"{panel['title']} {target['refId']}", target["expr"])
        for panel in dash["panels"]
        for target in panel["targets"]
    ]


def substitute(expr: str) -> str:
    for name in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, VARIABLES[name])
    return expr


def test_the_dashboard_has_the_uid_title_the_six_panels_of_the_guide_and_in_flight() -> None:
    dash = dashboard()
    assert dash["uid"] == "reconciliation"  # served at /d/reconciliation
    assert dash["title"] == "CDC Reconciliation"
    assert [(p["title"], p["type"]) for p in dash["panels"]] == PANELS
    assert len({p["id"] for p in dash["panels"]}) == len(PANELS)
    for panel in dash["panels"]:
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        for key in ("x", "y", "w", "h"):
            assert isinstance(panel["gridPos"][key], int)


def test_the_drift_panel_draws_the_warning_and_critical_thresholds() -> None:
    drift = dashboard()["panels"][0]
    defaults = drift["fieldConfig"]["defaults"]
    steps = [step["value"] for step in defaults["thresholds"]["steps"]]
    assert steps == [None, 1, 5]
    assert defaults["custom"]["thresholdsStyle"]["mode"] in {"line", "dashed", "line+area"}
    assert defaults["unit"] == "percent"


def test_the_panels_query_what_the_guide_asks() -> None:
    exprs = {title: expr for title, expr in queries(dashboard())}
    assert "cdc_reconciliation_drift_percentage" in exprs["Drift percentage by table A"]
    rows = exprs["Row count comparison (Cassandra vs PostgreSQL) A"]
    rows += exprs["Row count comparison (Cassandra vs PostgreSQL) B"]
    assert (
        "cdc_reconciliation_cassandra_rows" in rows and "cdc_reconciliation_postgres_rows" in rows
    )
    assert "by (type)" in exprs["Mismatch count by type A"]
    success = exprs["Job success rate A"]
    assert re.search(r'rate\(cdc_reconciliation_jobs_completed_total\{status="COMPLETED"', success)
    assert "/" in success
    quantiles = [exprs[f"Reconciliation duration (P50, P95, P99) {r}"] for r in "ABC"]
    for q, expr in zip(("0.5", "0.95", "0.99"), quantiles, strict=True):
        assert expr.startswith(f"histogram_quantile({q},")
        assert "cdc_reconciliation_duration_seconds_bucket" in expr
    recent = dashboard()["panels"][5]
    assert all(target.get("format") == "table" for target in recent["targets"])


def test_the_table_variable_lists_the_tables_and_every_query_uses_it() -> None:
    dash = dashboard()
    (variable,) = dash["templating"]["list"]
    assert variable["name"] == "table"
    assert variable["definition"] == "label_values(cdc_reconciliation_drift_percentage, table)"
    assert variable["query"]["query"] == variable["definition"]
    assert variable["includeAll"] and variable["multi"]
    for title, expr in queries(dash):
        assert 'table=~"$table"' in expr, title


def test_every_panel_query_is_valid_promql_on_exported_metrics(tmp_path: Path) -> None:
    known = exported_names()
    records = []
    for i, (title, expr) in enumerate(queries(dashboard())):
        concrete = substitute(expr)
        assert "$" not in concrete, f"{title}: unknown Grafana variable in {expr!r}"
        used = set(re.findall(r"cdc_reconciliation_\w+", concrete))
        assert used and used <= known, f"{title}: unknown metrics {used - known}"
        records.append({"record": f"dashboard:query_{i}", "expr": concrete})
    rules = tmp_path / "dashboard-queries.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))

    result = subprocess.run(
        [require_binary("promtool", "prometheus"), "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(records)} rules found" in result.stdout


def test_promtool_rejects_a_broken_query(tmp_path: Path) -> None:
    """The check above can fail: promtool does parse the expressions."""
    rules = tmp_path / "broken.yml"
    broken = {"record": "dashboard:broken", "expr": "sum by (table (cdc_reconciliation_drift"}
    rules.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [broken]}]}))
    result = subprocess.run(
        [require_binary("promtool", "prometheus"), "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0


def test_grafana_provisions_the_prometheus_datasource_and_the_dashboard_folder() -> None:
    sources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    (source,) = sources["datasources"]
    assert (source["uid"], source["type"]) == ("prometheus", "prometheus")
    assert source["url"] == "http://prometheus:9090"

    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text()
    )
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    # docker-compose mounts grafana/dashboards at the provider's path.
    compose = yaml.safe_load((MONITORING.parent.parent / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./docker/monitoring/grafana/dashboards:{provider['options']['path']}:ro" in mounts
