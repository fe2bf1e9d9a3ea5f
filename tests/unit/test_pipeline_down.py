"""A part of the CDC pipeline that is down is named, with how to start it and its log
(``pipeline.control.require``: what ``tests/pipeline`` fails with under ``make test``)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import control


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something listens on (Kafka, as far as ``require`` can tell)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_kafka_down_is_named_first(monkeypatch, tmp_path: Path) -> None:
    port = free_port()
    monkeypatch.setenv("PIPELINE_DIR", str(tmp_path))
    monkeypatch.setenv("KAFKA_PORT", str(port))

    with pytest.raises(control.PipelineDown) as raised:
        control.require(("kafka", "connector"))

    message = str(raised.value)
    assert f"the pipeline's kafka is not running (127.0.0.1:{port})" in message
    assert "make pipeline" in message and str(tmp_path / "kafka.log") in message


def test_a_connector_without_a_live_pid_is_named(monkeypatch, tmp_path: Path, listening) -> None:
    monkeypatch.setenv("PIPELINE_DIR", str(tmp_path))
    monkeypatch.setenv("KAFKA_PORT", str(listening))
    (tmp_path / "connector.pid").write_text("999999999\n")  # a pid no process has

    with pytest.raises(control.PipelineDown, match="the pipeline's connector is not running"):
        control.require(("kafka", "connector"))

    (tmp_path / "connector.pid").write_text(f"{os.getpid()}\n")
    control.require(("kafka", "connector"))  # both up: nothing raised
