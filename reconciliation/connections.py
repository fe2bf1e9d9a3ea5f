"""Connections to the two reconciled stores, configured from settings.

One Cassandra ``Session`` per process (the driver's cluster object is not fork-safe, so a
Celery prefork child builds its own), and short-lived psycopg connections to the target.
"""

from __future__ import annotations

import os
import threading

import psycopg
from cassandra import ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import dict_factory

from cdcrecon.conf import settings

_lock = threading.Lock()
_session: tuple[int, Cluster, Session] | None = None


class StoreUnavailable(RuntimeError):
    """Cassandra or PostgreSQL could not be reached; the message says which and why."""


def consistency_level(name: str | None = None) -> int:
    value = name or settings.cassandra.consistency
    return int(getattr(ConsistencyLevel, value))


def _build_cluster() -> Cluster:
    conf = settings.cassandra
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=conf.local_dc)),
        consistency_level=consistency_level(),
        request_timeout=60,
        row_factory=dict_factory,
    )
    auth = (
        PlainTextAuthProvider(username=conf.username, password=conf.password or "")
        if conf.username
        else None
    )
    return Cluster(
        contact_points=list(conf.hosts),
        port=conf.port,
        protocol_version=conf.protocol_version,
        auth_provider=auth,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=5,
        control_connection_timeout=5,
    )


def cassandra_session() -> Session:
    """This process's Cassandra session, connected on first use."""
    global _session
    with _lock:
        if _session is not None and _session[0] == os.getpid() and not _session[1].is_shutdown:
            return _session[2]
        cluster = _build_cluster()
        try:
            session = cluster.connect()
        except Exception as exc:
            cluster.shutdown()
            hosts = ",".join(settings.cassandra.hosts)
            raise StoreUnavailable(
                f"Cassandra at {hosts}:{settings.cassandra.port} is unreachable: {exc}"
            ) from exc
        _session = (os.getpid(), cluster, session)
        return session


def close_cassandra() -> None:
    global _session
    with _lock:
        if _session is not None and _session[0] == os.getpid():
            _session[1].shutdown()
        _session = None


def target_connection(**kwargs: object) -> psycopg.Connection:
    """A new connection to the target PostgreSQL database (the caller closes it)."""
    try:
        return psycopg.connect(settings.target.database_url, connect_timeout=5, **kwargs)  # type: ignore[arg-type]
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"Target PostgreSQL is unreachable: {exc}".strip()) from exc
