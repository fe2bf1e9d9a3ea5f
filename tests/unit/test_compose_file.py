"""docker-compose.yml is a valid Compose file describing the production-like stack.

Docker cannot run here, so the file is validated against the Compose Specification's JSON
schema.  The schema comes from a package registry, not a repository: PyPI's
``docker-compose==1.29.2`` wheel ships it as ``compose/config/compose_spec.json``.  The
wheel is fetched with pip on first use and the schema cached under .local/.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
CACHE = REPO / ".local" / "cache" / "compose-spec"
SCHEMA_PACKAGE = "docker-compose==1.29.2"
SCHEMA_MEMBER = "compose/config/compose_spec.json"


def compose_schema() -> dict[str, Any]:
    cached = CACHE / "compose_spec.json"
    if not cached.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "-q",
                SCHEMA_PACKAGE,
                "-d",
                str(CACHE),
            ],  # fmt: skip
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            pytest.fail(
                f"Could not fetch the Compose schema ({SCHEMA_PACKAGE} from PyPI):\n"
                f"{result.stdout}{result.stderr}",
                pytrace=False,
            )
        (wheel,) = CACHE.glob("docker_compose-1.29.2-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(SCHEMA_MEMBER)
        cached.write_bytes(data)
    return json.loads(cached.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def errors(document: dict[str, Any]) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.Draft201909Validator(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_the_compose_file_validates_against_the_compose_specification(compose) -> None:
    assert errors(compose) == []


def test_the_schema_check_can_fail(compose) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["web"]["healthcheck"]["intervall"] = "15s"
    broken["services"]["web"]["ports"] = "8080:8080"
    found = errors(broken)
    assert any("services/web/healthcheck" in e for e in found), found
    assert any("services/web/ports" in e for e in found), found


def test_the_stack_has_every_service_of_the_design(compose) -> None:
    services = compose["services"]
    expected = {"cassandra", "postgres", "redis", "web", "worker", "beat"}
    expected |= {"prometheus", "alertmanager", "grafana", "migrate"}
    assert set(services) == expected
    assert services["cassandra"]["image"] == "cassandra:5.0"
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"].startswith("redis")
    for name in ("web", "worker", "beat", "migrate"):
        assert services[name]["build"]["dockerfile"] == "Dockerfile", name
    assert services["web"]["command"][:2] == ["gunicorn", "cdcrecon.wsgi:application"]
    assert "--bind=0.0.0.0:8080" in services["web"]["command"]
    assert services["web"]["ports"] == ["8080:8080"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "cdcrecon", "worker"]
    beat = services["beat"]["command"]
    assert beat[:4] == ["celery", "-A", "cdcrecon", "beat"]
    assert beat[beat.index("-S") + 1] == "django_celery_beat.schedulers:DatabaseScheduler"
    assert services["grafana"]["ports"] == ["3000:3000"]


def test_every_long_running_service_has_a_healthcheck_and_restarts(compose) -> None:
    for name, service in compose["services"].items():
        if name == "migrate":
            assert service["restart"] == "no"
            continue
        assert service["healthcheck"]["test"], name
        assert service["restart"] == "unless-stopped", name


def test_the_app_containers_get_the_design_environment(compose) -> None:
    required = {
        "DATABASE_URL",
        "TARGET_DATABASE_URL",
        "CASSANDRA_HOSTS",
        "CASSANDRA_KEYSPACE",
        "CELERY_BROKER_URL",
        "SECRET_KEY",
        "ALLOWED_HOSTS",
        "RECONCILIATION_DRIFT_WARNING_THRESHOLD",
        "RECONCILIATION_DRIFT_CRITICAL_THRESHOLD",
        "RECONCILIATION_TABLES",
    }
    for name in ("web", "worker", "beat", "migrate"):
        env = compose["services"][name]["environment"]
        assert required <= set(env), (name, required - set(env))
        assert env["CASSANDRA_HOSTS"] == "cassandra"
        assert env["CELERY_BROKER_URL"] == "redis://redis:6379/0"
        assert "@postgres:5432/" in env["DATABASE_URL"]
        # Prometheus scrapes web:8080 with Host "web": Django must accept it.
        assert "web" in env["ALLOWED_HOSTS"].split(",")
        assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")  # never a baked-in secret


def test_named_volumes_are_declared_and_bind_mounts_exist(compose) -> None:
    declared = set(compose["volumes"])
    used = set()
    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            source, target = mount.split(":")[:2]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name}: {source} is missing"
            else:
                used.add(source)
    assert used == declared
    assert {"cassandra-data", "postgres-data", "prometheus-data", "grafana-data"} <= declared


def test_prometheus_scrapes_the_web_service_and_loads_the_rules(compose) -> None:
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./docker/monitoring/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts
    assert (
        "./docker/monitoring/prometheus-alerts.yml:/etc/prometheus/prometheus-alerts.yml:ro"
        in mounts
    )
    config = yaml.safe_load((REPO / "docker/monitoring/prometheus.yml").read_text())
    targets = [t for job in config["scrape_configs"] for c in job["static_configs"] for t in c["targets"]]  # fmt: skip
    assert "web:8080" in targets
    assert "alertmanager:9093" in targets
    am = compose["services"]["alertmanager"]["volumes"]
    assert "./docker/monitoring/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in am


def test_the_dockerfile_builds_the_app_from_the_lock_file() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    assert re.search(r"^RUN pip install -c requirements\.lock \.$", dockerfile, re.M)
    assert "EXPOSE 8080" in dockerfile
    for copied in re.findall(r"^COPY (.+) \S+$", dockerfile, re.M):
        for source in copied.split():
            assert (REPO / source).exists(), f"the Dockerfile copies a missing {source}"
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".local" in ignored and ".git" in ignored
