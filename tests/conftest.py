"""Fixtures for the real services the tests use: Cassandra, the target PostgreSQL, Redis,
and a real Celery worker process.

A test that needs a service and cannot reach it FAILS with a message saying how to start
it (`make services`); nothing here skips.  The test keyspace and target database are
created on first use and belong to the test run (see tests/settings.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from cassandra.cluster import Session
from psycopg import sql

from cdcrecon.conf import settings
from reconciliation.connections import StoreUnavailable, cassandra_session
from tests.support import REPO, celery_worker_command, child_env, wait_until

# The Celery worker fixtures' private broker: a Redis database of their own and a queue
# named after this pytest process, so no other worker on the machine takes their tasks.
TEST_BROKER_URL = os.environ.get("CDCRECON_TEST_BROKER_URL", "redis://127.0.0.1:6379/3")
TEST_QUEUE = f"cdcrecon_test{os.environ.get('CDCRECON_TEST_SUFFIX', '')}_{os.getpid()}"


def _admin_url(database: str) -> str:
    """The target server's URL pointed at another database (to create the test one)."""
    info = psycopg.conninfo.conninfo_to_dict(settings.target.database_url)
    info["dbname"] = database
    return psycopg.conninfo.make_conninfo(**info)


@pytest.fixture(scope="session")
def cassandra_keyspace() -> str:
    """The test keyspace on the real Cassandra node, created once per run."""
    keyspace = settings.cassandra.keyspace
    assert keyspace.startswith("cdcrecon_test"), "tests must never use a real keyspace"
    try:
        session = cassandra_session()
    except StoreUnavailable as exc:
        pytest.fail(f"{exc}\nStart the local services first: make services", pytrace=False)
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    return keyspace


@pytest.fixture
def cassandra(cassandra_keyspace: str) -> Iterator[Session]:
    """This process's session on the real Cassandra node, using the test keyspace.

    Function-scoped: a test that closes the session (to simulate an outage) gets a fresh
    one next time.
    """
    try:
        session = cassandra_session()
    except StoreUnavailable as exc:
        pytest.fail(f"{exc}\nStart the local services first: make services", pytrace=False)
    if session.keyspace != cassandra_keyspace:
        session.set_keyspace(cassandra_keyspace)
    yield session


@pytest.fixture(scope="session")
def target_db() -> Iterator[str]:
    """The conninfo of the test target database (created if missing, in the public schema)."""
    url = settings.target.database_url
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    assert str(name).startswith("warehouse_test"), "tests must never use the real target"
    try:
        with psycopg.connect(_admin_url("postgres"), autocommit=True, connect_timeout=5) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(str(name))))
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is unreachable: {exc}\nStart it first: make services", pytrace=False
        )
    yield url


@pytest.fixture
def target(target_db: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the test target database."""
    with psycopg.connect(target_db, autocommit=True) as conn:
        yield conn


@pytest.fixture
def table_pair(
    cassandra_keyspace: str, target: psycopg.Connection, db: None
) -> Iterator[Callable[..., Any]]:
    """Create a Cassandra table and a PostgreSQL table with one unique name, and register them.

        mapping = table_pair("id text PRIMARY KEY, email text", "id text PRIMARY KEY, email text")

    Returns the saved TableMapping (key columns discovered from Cassandra).  Both tables are
    dropped after the test.
    """
    from reconciliation.models import TableMapping
    from reconciliation.registry import ensure_key_columns

    created: list[str] = []
    keyspace = cassandra_keyspace

    def make(cassandra_columns: str, postgres_columns: str, **mapping_fields: Any) -> TableMapping:
        name = f"t_{uuid.uuid4().hex[:12]}"
        cassandra_session().execute(f"CREATE TABLE {keyspace}.{name} ({cassandra_columns})")
        target.execute(f"CREATE TABLE public.{name} ({postgres_columns})")
        created.append(name)
        mapping = TableMapping.objects.create(
            name=name,
            cassandra_keyspace=settings.cassandra.keyspace,
            cassandra_table=name,
            postgres_schema="public",
            postgres_table=name,
            **mapping_fields,
        )
        return ensure_key_columns(mapping, cassandra_session())

    yield make
    for name in created:
        cassandra_session().execute(f"DROP TABLE IF EXISTS {keyspace}.{name}")
        target.execute(f"DROP TABLE IF EXISTS public.{name}")


def use_broker(url: str, queue: str) -> None:
    """Send this process's Celery tasks to ``queue`` on ``url``.

    Pools and routes are built lazily from the configuration of their time, so the ones
    made earlier (for the default broker and queue) are dropped.
    """
    from cdcrecon.celery import app

    app.conf.broker_url = url
    app.conf.task_default_queue = queue
    app._pool = None
    app.__dict__.pop("amqp", None)  # a cached_property: rebuilt with the new queue


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None) -> Iterator[None]:
    """pytest-django's test databases; before they are dropped, the run locks' kept
    connection (``jobs.slots``) is closed (a session still open on them stops the drop)."""
    yield
    from reconciliation.jobs.slots import close_segment_lock_connection

    close_segment_lock_connection()


@pytest.fixture(scope="session")
def celery_broker() -> Iterator[str]:
    """This run's private broker: a Redis database of its own and a queue named after this
    pytest process, emptied before use (two runs never take each other's tasks)."""
    from cdcrecon.celery import app

    use_broker(TEST_BROKER_URL, TEST_QUEUE)
    try:
        app.control.purge()
    except Exception as exc:
        pytest.fail(
            f"Redis at {TEST_BROKER_URL} is unreachable: {exc}\nStart it: make services",
            pytrace=False,
        )
    yield TEST_BROKER_URL
    app.control.purge()


@pytest.fixture(scope="session")
def celery_worker_process(
    django_db_setup: None, django_db_blocker: Any, celery_broker: str, tmp_path_factory: Any
) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker process on the test database and the private broker."""
    suffix = os.environ.get("CDCRECON_TEST_SUFFIX", "")
    log_path = tmp_path_factory.mktemp("celery") / "worker.log"
    env = child_env(CELERY_BROKER_URL=celery_broker)
    command = celery_worker_command(TEST_QUEUE, f"cdcrecon-test{suffix}-{os.getpid()}@%h")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def ready() -> bool:
        if process.poll() is not None:
            pytest.fail(
                f"The Celery worker exited ({process.returncode}):\n{log_path.read_text()}",
                pytrace=False,
            )
        return b" ready." in log_path.read_bytes()

    wait_until(ready, 90, f"the Celery worker did not start; its log: {log_path}")
    process.log_path = log_path  # type: ignore[attr-defined]
    yield process

    process.send_signal(signal.SIGTERM)  # warm shutdown: finish the current task
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the worker's own process group
        process.wait(timeout=10)
