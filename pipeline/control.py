"""Starting, stopping and checking the pipeline's parts from Python (the demo writer, tests).

Everything goes through ``scripts/pipeline``, so there is one definition of how a part runs.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "pipeline"
PARTS = ("kafka", "connector", "sink")


class PipelineDown(RuntimeError):
    """A part of the pipeline is not running; the message names it and its log."""


def pipeline_dir() -> Path:
    return Path(os.environ.get("PIPELINE_DIR", REPO / ".local" / "pipeline"))


def kafka_address() -> str:
    return f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}"


def log_path(part: str) -> Path:
    return pipeline_dir() / f"{part}.log"


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def part_running(part: str) -> bool:
    """Kafka: its port answers; the connector and the demo sink: their pid is alive."""
    if part == "kafka":
        return _port_open(int(kafka_address().rsplit(":", 1)[1]))
    pid_file = pipeline_dir() / f"{part}.pid"
    try:
        os.kill(int(pid_file.read_text().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


def require(parts: Iterable[str] = ("kafka", "connector")) -> None:
    """Raise ``PipelineDown`` naming the first part that is not running."""
    for part in parts:
        if not part_running(part):
            where = kafka_address() if part == "kafka" else f"pid file {pipeline_dir()}/{part}.pid"
            raise PipelineDown(
                f"the pipeline's {part} is not running ({where}); start it with "
                f"`make pipeline` (scripts/pipeline up {part}); log: {log_path(part)}"
            )


def run_script(command: str, part: str, timeout: float = 180) -> str:
    """``scripts/pipeline COMMAND PART``; raises ``PipelineDown`` with its output on failure."""
    result = subprocess.run(
        [str(SCRIPT), command, part],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise PipelineDown(f"scripts/pipeline {command} {part} failed:\n{result.stderr}")
    return result.stdout


def log_size(part: str = "connector") -> int:
    path = log_path(part)
    return path.stat().st_size if path.exists() else 0


def _log_since(offset: int, part: str = "connector") -> str:
    with open(log_path(part), "rb") as log:
        log.seek(offset)
        return log.read().decode("utf-8", "replace")


def wait_for_log(pattern: str, offset: int, timeout: float, part: str = "connector") -> bool:
    """Whether ``pattern`` (a regex) appears in the part's log after ``offset`` in time."""
    deadline = time.monotonic() + timeout
    compiled = re.compile(pattern)
    while time.monotonic() < deadline:
        if compiled.search(_log_since(offset, part)):
            return True
        time.sleep(0.25)
    return False


def wait_for_keyspace(keyspace: str, offset: int, timeout: float = 20) -> None:
    """Wait until the agent has taken in a new keyspace. Tables created in the same breath
    as their keyspace are missed by the agent's schema listener (it hears only of the
    keyspace), so create the keyspace, wait here, then create its tables."""
    if not wait_for_log(
        rf"Added keyspace \[CREATE KEYSPACE {re.escape(keyspace)} ", offset, timeout
    ):
        restart_connector()


def wait_for_tables(keyspace: str, tables: Iterable[str], offset: int, timeout: float = 20) -> None:
    """Wait until the agent captures each new table (its log says so). A table it missed, or
    could not take in (one using a UDT created while it ran: "Unknown type"), is picked up by
    restarting the agent, which loads the whole schema at start."""
    for table in tables:
        name = rf"{re.escape(keyspace)}\.{re.escape(table)}"
        if not wait_for_log(rf"Table {name} detected to be added", offset, timeout):
            restart_connector()
            return
        time.sleep(0.5)  # the error, if any, follows the detection at once
        if wait_for_log(rf"Error happened while adding table {name} ", offset, 0.5):
            restart_connector()
            return


def restart_connector() -> None:
    run_script("stop", "connector")
    run_script("start", "connector")
