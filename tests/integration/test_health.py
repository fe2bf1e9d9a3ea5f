"""/healthz says the process lives; /readyz says which dependency is down."""

from __future__ import annotations

import dataclasses
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test import Client, override_settings

from reconciliation.connections import close_cassandra
from tests.support import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def private_redis(tmp_path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A Redis server of this test's own, so stopping it disturbs nothing else."""
    server = shutil.which("redis-server")
    assert server, "redis-server is not installed: run `make services`"
    port = free_port()
    proc = subprocess.Popen(
        [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield port, proc
    proc.kill()
    proc.wait()


def test_healthz_answers_without_touching_any_store(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ready_when_every_dependency_answers(client: Client, cassandra) -> None:
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["down"] == []
    assert body["checks"]["cassandra"]["detail"].startswith("Cassandra 5.0")
    assert {name for name, check in body["checks"].items() if check["status"] == "up"} == {
        "cassandra",
        "postgres",
        "target_postgres",
        "broker",
    }


def test_readyz_names_the_broker_when_redis_stops(client: Client, private_redis) -> None:
    port, proc = private_redis
    with override_settings(CELERY_BROKER_URL=f"redis://127.0.0.1:{port}/0"):
        assert client.get("/readyz").json()["checks"]["broker"]["status"] == "up"
        proc.kill()
        proc.wait()
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["down"] == ["broker"]


def test_readyz_names_cassandra_when_it_cannot_be_reached(client: Client) -> None:
    unreachable = dataclasses.replace(settings.CASSANDRA, port=free_port())
    close_cassandra()
    try:
        with override_settings(CASSANDRA=unreachable):
            response = client.get("/readyz")
    finally:
        close_cassandra()
    body = response.json()
    assert response.status_code == 503
    assert body["down"] == ["cassandra"]
    assert "unreachable" in body["checks"]["cassandra"]["detail"]


def test_readyz_names_the_target_database_when_it_cannot_be_reached(client: Client) -> None:
    closed = f"postgres://cdcrecon@127.0.0.1:{free_port()}/warehouse"
    target = dataclasses.replace(settings.TARGET, database_url=closed)
    with override_settings(TARGET=target):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["down"] == ["target_postgres"]
