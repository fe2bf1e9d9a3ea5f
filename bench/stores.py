"""Where the benchmark's data and processes live, and how to reach them.

Nothing here touches the demo ``warehouse`` keyspace or database, nor the app database:

* Cassandra keyspace ``cdcrecon_bench`` (the source tables);
* PostgreSQL database ``warehouse_bench`` (the target tables, the CDC copy);
* PostgreSQL database ``warehouse_bench_source`` (a plain PostgreSQL copy of the source
  rows, for the reladiff peer only);
* PostgreSQL database ``cdcrecon_bench`` (+ ``CDCRECON_TEST_SUFFIX``): the app database the
  bench's Django processes and Celery workers use (migrated by the bench);
* Redis database 5 (``CDCRECON_BENCH_BROKER_URL``) and a queue named after the bench run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import tuple_factory
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
KEYSPACE = "cdcrecon_bench"
DATABASE = "warehouse_bench"
SOURCE_DATABASE = "warehouse_bench_source"
SUFFIX = os.environ.get("CDCRECON_TEST_SUFFIX", "")  # keeps parallel checkouts apart
APP_DATABASE = "cdcrecon_bench" + SUFFIX
BROKER_URL = os.environ.get("CDCRECON_BENCH_BROKER_URL", "redis://127.0.0.1:6379/5")


def server_url(database: str, variable: str = "TARGET_DATABASE_URL") -> str:
    """A URL for ``database`` on the PostgreSQL server of ``variable`` (or the local one)."""
    base = os.environ.get(variable, "postgres://cdcrecon@127.0.0.1:5432/warehouse")
    return urlunsplit(urlsplit(base)._replace(path=f"/{database}"))


def target_url(database: str = DATABASE) -> str:
    return server_url(database)


def app_url() -> str:
    return server_url(APP_DATABASE, "DATABASE_URL")


def connect_target() -> psycopg.Connection[Any]:
    return psycopg.connect(target_url())


def ensure_database(url: str) -> None:
    """Create the database ``url`` names, if it does not exist yet."""
    name = urlsplit(url).path.lstrip("/")
    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def cassandra_cluster(row_factory: Any = tuple_factory, executor_threads: int = 2) -> Cluster:
    """A plain driver Cluster: token-aware, consistency ONE, the protocol the app uses."""
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(
            DCAwareRoundRobinPolicy(local_dc=os.environ.get("CASSANDRA_LOCAL_DC", "datacenter1"))
        ),
        consistency_level=ConsistencyLevel.ONE,
        request_timeout=120,
        row_factory=row_factory,
    )
    return Cluster(
        os.environ.get("CASSANDRA_HOSTS", "127.0.0.1").split(","),
        port=int(os.environ.get("CASSANDRA_PORT", "9042")),
        protocol_version=int(os.environ.get("CASSANDRA_PROTOCOL_VERSION", "5")),
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        executor_threads=executor_threads,
    )


def cassandra_session(row_factory: Any = tuple_factory) -> tuple[Cluster, Session]:
    cluster = cassandra_cluster(row_factory)
    return cluster, cluster.connect()


def django_environment(table: str, **extra: str) -> dict[str, str]:
    """The environment of every bench process that runs cdcrecon's own code (a Celery
    worker, an in-process job): the bench's app database, broker, keyspace and target.

    The re-check delay is 0, as in the old engine bench: a CHECKSUM job would otherwise
    sleep RECONCILIATION_RECHECK_DELAY_SECONDS (5 s) before re-reading its differences.
    """
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="cdcrecon.settings",
        DATABASE_URL=app_url(),
        TARGET_DATABASE_URL=target_url(),
        POSTGRES_SCHEMA="public",
        CASSANDRA_KEYSPACE=KEYSPACE,
        CASSANDRA_CONSISTENCY="ONE",
        CELERY_BROKER_URL=BROKER_URL,
        CACHE_URL=BROKER_URL,
        CACHE_KEY_PREFIX=f"cdcrecon_bench{SUFFIX}",
        RECONCILIATION_TABLES=table,
        RECONCILIATION_RECHECK_DELAY_SECONDS="0",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(extra)
    return env


def setup_django(table: str) -> None:
    """Point this process at the bench's stores (``django_environment``) and set Django up."""
    os.environ.update(django_environment(table))
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
