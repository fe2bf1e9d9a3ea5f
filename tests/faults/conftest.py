"""The fault-injection suite's PRIVATE stack: its own PostgreSQL cluster and Cassandra node.

The shared services (the ones ``make services`` starts, which the rest of the suite and
other developers use) are never killed or restarted.  ``scripts/services`` starts a second
set from the same packages and jars with its environment overrides (``SERVICES_DIR``,
``PG_PORT``, ``CQL_PORT``, ``CASSANDRA_STORAGE_PORT``, ``CASSANDRA_CLUSTER_NAME``) under
``.local/faults/``, and the tests kill and restart only those: Cassandra by SIGKILL to the
pid in the private pid file, PostgreSQL with ``scripts/services down/up``.  The code under
test runs in real processes pointed at the private stores: two Celery workers (one queue
each, so a test can send a job to a chosen worker), two more that share one queue and
nothing else (each its own ``TMPDIR``: the segments of one job spread over both), and a
driver process (``tests/faults/driver.py``) that enqueues jobs and reads them back.

Ports default to 25432 (PostgreSQL), 19142 (CQL) and 17100 (Cassandra storage), all below
Linux's ephemeral range (32768-60999) so that no outgoing connection can hold them; set
``FAULTS_PG_PORT``, ``FAULTS_CQL_PORT``, ``FAULTS_STORAGE_PORT`` to move them.
Measurements (seconds from a fault to FAILED, from recovery to the first successful job)
are printed at the end of the run and written to ``.local/faults/measurements.json``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import ConstantReconnectionPolicy, RoundRobinPolicy

from tests.integration.conftest import api_client, superuser_api  # noqa: F401 (fixtures)
from tests.support import REPO, celery_worker_command, wait_until

SHARED_PORTS = {5432, 6379, 9042, 7000, 7199}
FAULTS_DIR = REPO / ".local" / "faults"
BROKER_URL = os.environ.get("CDCRECON_FAULTS_BROKER_URL", "redis://127.0.0.1:6379/4")
KEYSPACE = "cdcrecon_faults"
RECHECK_DELAY_SECONDS = 6  # long enough to inject a fault while a job re-checks

MEASUREMENTS: dict[str, float] = {}


def measure(name: str, seconds: float) -> None:
    MEASUREMENTS[name] = round(seconds, 2)
    FAULTS_DIR.mkdir(parents=True, exist_ok=True)
    (FAULTS_DIR / "measurements.json").write_text(json.dumps(MEASUREMENTS, indent=2) + "\n")


@dataclass
class PrivateStack:
    """The private PostgreSQL cluster and Cassandra node, and how to hurt them."""

    pg_port: int
    cql_port: int
    storage_port: int
    directory: Path = FAULTS_DIR
    log: list[str] = field(default_factory=list)

    def services_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            SERVICES_DIR=str(self.directory),
            PG_PORT=str(self.pg_port),
            CQL_PORT=str(self.cql_port),
            CASSANDRA_STORAGE_PORT=str(self.storage_port),
            CASSANDRA_CLUSTER_NAME="cdcrecon-faults",
            CASSANDRA_HEAP=os.environ.get("FAULTS_CASSANDRA_HEAP", "768M"),
            CASSANDRA_LIB=str(REPO / ".local" / "cassandra" / "lib"),
        )
        return env

    def services(self, command: str, *names: str, timeout: float = 300) -> None:
        """``scripts/services COMMAND NAMES`` on the private instances."""
        result = subprocess.run(
            [str(REPO / "scripts" / "services"), command, *names],
            env=self.services_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        self.log.append(result.stdout + result.stderr)
        if result.returncode != 0:
            pytest.fail(
                f"scripts/services {command} {' '.join(names)} (private stack) failed:\n"
                f"{result.stdout}\n{result.stderr}",
                pytrace=False,
            )

    @property
    def app_url(self) -> str:
        return f"postgres://cdcrecon@127.0.0.1:{self.pg_port}/cdcrecon"

    @property
    def target_url(self) -> str:
        return f"postgres://cdcrecon@127.0.0.1:{self.pg_port}/warehouse"

    def cassandra_pid(self) -> int:
        pid_file = self.directory / "cassandra" / "cassandra.pid"
        pid = int(pid_file.read_text().strip())
        # Never signal anything but the private node: its command line names our directory.
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        assert "CassandraDaemon" in cmdline and str(self.directory) in cmdline, cmdline[:300]
        return pid

    def kill_cassandra(self) -> None:
        """SIGKILL the private Cassandra node (no clean shutdown, like a crashed host)."""
        pid = self.cassandra_pid()
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), 30, "Cassandra died")

    def app_env(self, **extra: str) -> dict[str, str]:
        """The environment of a process of the code under test on the private stores."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("CASSANDRA_", "RECONCILIATION_", "DJANGO_", "CDCRECON_"))
        }
        env.update(
            DJANGO_SETTINGS_MODULE="cdcrecon.settings",
            DATABASE_URL=self.app_url,
            TARGET_DATABASE_URL=self.target_url,
            CASSANDRA_HOSTS="127.0.0.1",
            CASSANDRA_PORT=str(self.cql_port),
            CASSANDRA_KEYSPACE=KEYSPACE,
            CASSANDRA_CONSISTENCY="ONE",
            CELERY_BROKER_URL=BROKER_URL,
            RECONCILIATION_RECHECK_DELAY_SECONDS=str(RECHECK_DELAY_SECONDS),
            # Rows are planted moments before a job reads them: judged by the fixed delay, as
            # before the lag budget (the live-writes test sets its table's own budget).
            RECONCILIATION_CDC_LAG_BUDGET_SECONDS="0",
            RECONCILIATION_TABLES="users",
            RECONCILIATION_MAX_CONCURRENT_JOBS="4",
            PYTHONPATH=str(REPO),
            PYTHONUNBUFFERED="1",
            LOG_LEVEL="INFO",
        )
        env.update(extra)
        return env


def is_dead(pid: int) -> bool:
    """Has process ``pid`` ended (gone, or a zombie its parent has not reaped yet)?"""
    return not Path(f"/proc/{pid}").exists() or _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.fixture(scope="session")
def private_stack() -> Iterator[PrivateStack]:
    stack = PrivateStack(
        pg_port=int(os.environ.get("FAULTS_PG_PORT", "25432")),
        cql_port=int(os.environ.get("FAULTS_CQL_PORT", "19142")),
        storage_port=int(os.environ.get("FAULTS_STORAGE_PORT", "17100")),
    )
    clash = {stack.pg_port, stack.cql_port, stack.storage_port} & SHARED_PORTS
    assert not clash, f"the private stack must not use the shared services' ports {clash}"
    stack.services("up", "postgres", "cassandra", timeout=400)
    yield stack
    stack.services("down", "postgres", "cassandra")
    if MEASUREMENTS:
        sys.stderr.write(f"\nFault measurements (seconds): {json.dumps(MEASUREMENTS)}\n")


def connect_cassandra(port: int) -> tuple[Cluster, Session]:
    cluster = Cluster(
        ["127.0.0.1"],
        port=port,
        protocol_version=5,
        connect_timeout=5,
        execution_profiles={
            EXEC_PROFILE_DEFAULT: ExecutionProfile(load_balancing_policy=RoundRobinPolicy())
        },
        reconnection_policy=ConstantReconnectionPolicy(1.0, max_attempts=None),
    )
    return cluster, cluster.connect()


@pytest.fixture(scope="session")
def private_cassandra(private_stack: PrivateStack) -> Iterator[Callable[[], Session]]:
    """``private_cassandra()``: a fresh session on the private node, in the test keyspace.

    Fresh each time on purpose: the tests kill the node, and a session from before the
    crash is exactly the kind of stale connection the code under test must cope with; the
    test's own helpers should not depend on it."""
    sessions: list[Cluster] = []

    def connect() -> Session:
        deadline = time.monotonic() + 120
        while True:
            try:
                cluster, session = connect_cassandra(private_stack.cql_port)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        sessions.append(cluster)
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} WITH replication = "
            "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        session.set_keyspace(KEYSPACE)
        return session

    yield connect
    for cluster in sessions:
        cluster.shutdown()


class Driver:
    """The driver process (tests/faults/driver.py): one JSON command per line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.driver"],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def call(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, "the driver process died"
        return json.loads(line)  # type: ignore[no-any-return]

    def enqueue(
        self, table: str, strategy: str, queue: str, mapping: dict[str, Any] | None = None
    ) -> str:
        answer = self.call(
            cmd="enqueue", table=table, strategy=strategy, queue=queue, mapping=mapping or {}
        )
        assert "job_id" in answer, answer
        return str(answer["job_id"])

    def job(self, job_id: str) -> dict[str, Any]:
        return self.call(cmd="job", job_id=job_id)

    def segments(self, job_id: str) -> list[dict[str, Any]]:
        """The job's segments (``JobSegment`` rows), STAGE then COMPARE, by number."""
        answer = self.call(cmd="segments", job_id=job_id)
        assert "segments" in answer, answer
        return answer["segments"]  # type: ignore[no-any-return]

    def findings(self, job_id: str) -> dict[str, Any]:
        """``{"findings": [[key, type], ...], "mismatch_rows": n, "finding_rows": n}``."""
        answer = self.call(cmd="findings", job_id=job_id)
        assert "findings" in answer, answer
        return answer

    def api(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """A request to the app's API, made inside the driver (on the private stores) as a
        superuser with a real token: ``{"status_code": ..., "body": ...}``."""
        answer = self.call(cmd="api", method=method, path=path, body=body)
        assert "status_code" in answer, answer
        return answer

    def wait_for(
        self, job_id: str, condition: Callable[[dict[str, Any]], bool], timeout: float, what: str
    ) -> dict[str, Any]:
        last: dict[str, Any] = {}

        def check() -> dict[str, Any] | None:
            nonlocal last
            last = self.job(job_id)
            return last if "error" not in last and condition(last) else None

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            time.sleep(0.1)
        pytest.fail(f"Job {job_id} did not become {what} within {timeout} s: {last}", pytrace=False)

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="session")
def driver(private_stack: PrivateStack) -> Iterator[Driver]:
    driver = Driver(private_stack.app_env())
    assert driver.call(cmd="migrate") == {"ok": True}
    yield driver
    driver.close()


@dataclass
class Worker:
    name: str
    queue: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def pool_children(self) -> list[int]:
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True
        ).stdout
        return [int(pid) for pid in out.split()]


def start_worker(
    stack: PrivateStack, name: str, log_dir: Path, queue: str | None = None, **env: str
) -> Worker:
    """A worker on ``queue`` (default: a queue of its own), ``env`` added to its environment."""
    queue = queue or f"cdcrecon_faults_{os.getpid()}_{name}"
    log_path = log_dir / f"worker-{name}.log"
    command = celery_worker_command(queue, f"faults-{name}-{os.getpid()}@%h", "--without-heartbeat")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=stack.app_env(**env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Worker(name, queue, process, log_path)

    def ready() -> bool:
        if process.poll() is not None:
            pytest.fail(f"worker {name} exited:\n{log_path.read_text()}", pytrace=False)
        return b" ready." in log_path.read_bytes()

    wait_until(ready, 120, f"worker {name} did not start; its log: {log_path}")
    return worker


def stop_workers(started: list[Worker]) -> None:
    for worker in started:
        worker.process.send_signal(signal.SIGTERM)
    for worker in started:
        try:
            worker.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.process.pid, signal.SIGKILL)  # the worker's own process group
            worker.process.wait(timeout=10)


@pytest.fixture(scope="session")
def workers(
    private_stack: PrivateStack, driver: Driver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Worker]]:
    """Two real Celery worker processes on the private stores, one queue each."""
    log_dir = tmp_path_factory.mktemp("fault-workers")
    started = [start_worker(private_stack, name, log_dir) for name in ("a", "b")]
    yield started
    stop_workers(started)


#: Rows per segment for the shared-queue workers (and for single-process runs compared
#: with them): small, so that a table of a few thousand rows makes many segments.
SEGMENT_ROWS = 500


@pytest.fixture(scope="session")
def segment_workers(
    private_stack: PrivateStack, driver: Driver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Worker]]:
    """Two real Celery worker processes that share ONE queue and nothing on disk: each has
    its own ``TMPDIR`` (workers on different hosts share only Redis and the databases).
    Segments of RECONCILIATION_SEGMENT_ROWS = SEGMENT_ROWS."""
    log_dir = tmp_path_factory.mktemp("segment-workers")
    queue = f"cdcrecon_faults_{os.getpid()}_shared"
    started = []
    for name in ("sa", "sb"):
        tmpdir = log_dir / f"tmp-{name}"
        tmpdir.mkdir()
        started.append(
            start_worker(
                private_stack,
                name,
                log_dir,
                queue,
                TMPDIR=str(tmpdir),
                RECONCILIATION_SEGMENT_ROWS=str(SEGMENT_ROWS),
            )
        )
    yield started
    stop_workers(started)


USERS_COLUMNS = "id text PRIMARY KEY, email text"


@pytest.fixture
def users_table(
    private_stack: PrivateStack, private_cassandra: Callable[[], Session]
) -> Callable[[int, int], str]:
    """``users_table(in_cassandra, in_postgres)``: a fresh table pair on the private stores
    with the first N rows on each side (so ``in_cassandra - in_postgres`` rows are missing
    in PostgreSQL)."""

    def make(in_cassandra: int, in_postgres: int) -> str:
        name = f"f_{uuid.uuid4().hex[:12]}"
        session = private_cassandra()
        session.execute(f"CREATE TABLE {name} ({USERS_COLUMNS})")
        insert = session.prepare(f"INSERT INTO {name} (id, email) VALUES (?, ?)")
        for i in range(in_cassandra):
            session.execute(insert, (f"user-{i}", f"u{i}@example.com"))
        session.cluster.shutdown()
        with psycopg.connect(private_stack.target_url, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE public.{name} ({USERS_COLUMNS})")
            with conn.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO public.{name} (id, email) VALUES (%s, %s)",
                    [(f"user-{i}", f"u{i}@example.com") for i in range(in_postgres)],
                )
        return name

    return make
