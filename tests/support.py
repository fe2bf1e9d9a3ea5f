"""Plain helpers shared by the tests that start real processes (a Celery worker, gunicorn,
Prometheus, a second Django process) against the pytest-django test database.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

REPO = Path(__file__).resolve().parent.parent


def current_database_url() -> str:
    """A postgres:// URL for the database the current test runs against (the test DB)."""
    from django.db import connection

    s = connection.settings_dict
    user = quote(s.get("USER") or "", safe="")
    password = quote(s.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or "5432"
    return f"postgres://{auth}{host}:{port}/{s['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child Django process using the test settings and test DB."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=current_database_url(),
        CDCRECON_TEST_SUFFIX=os.environ.get("CDCRECON_TEST_SUFFIX", ""),
        PYTHONPATH=str(REPO),
        PYTHONUNBUFFERED="1",
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(extra)
    return env


def run_django_code(code: str, timeout: float = 60) -> str:
    """Run ``code`` in a separate Python process with Django set up on the test DB."""
    script = "import django\ndjango.setup()\n" + code
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"child process failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_binary(name: str, package: str) -> str:
    """The path of a Debian-packaged tool; FAIL (never skip) with the fix when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not installed. It comes from the Debian package `{package}`: "
            f"run `make test-tools` (scripts/ensure-packages {package}) or "
            f"`apt-get install {package}`.",
            pytrace=False,
        )
    return path


def wait_until(condition: Callable[[], Any], timeout: float, message: str) -> Any:
    """Poll ``condition`` until it returns something truthy; FAIL after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(f"Timed out after {timeout:.0f} s: {message}", pytrace=False)


def celery_worker_command(
    queue: str, hostname: str, *extra: str, concurrency: int = 1
) -> list[str]:
    """A real prefork Celery worker (one pool process by default), consuming only ``queue``."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "cdcrecon",
        "worker",
        "--pool=prefork",
        f"--concurrency={concurrency}",
        f"--queues={queue}",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
        *extra,
        f"--hostname={hostname}",
    ]


def latest_event(mismatch: Any) -> Any:
    """A mismatch's newest history event: the ledger's record of its last status change."""
    event = mismatch.events.order_by("-at", "-pk").first()
    assert event is not None, f"{mismatch} has no history"
    return event
