"""Connections to the two reconciled stores (and the app database), and how they heal.

This module is the one owner of a process's store connections:

* **Cassandra**: one ``Session`` per process (the driver's cluster object is not fork-safe,
  so a Celery prefork child builds its own).  ``healthy_cassandra_session`` probes it with a
  cheap query and, when the probe fails (defunct connection, NoHostAvailable, a shut-down
  cluster), throws the session away and connects once more before giving up with
  ``StoreUnavailable``.  ``/readyz`` and every job use that same function, so the two judge
  health the same way.  The driver reconnects to a node that was down every
  ``RECONNECT_SECONDS`` (``ConstantReconnectionPolicy``), so a returned node is used within
  seconds even by a session that outlived the outage.
* **Transient read errors** (timeouts, overloaded or unavailable replicas) are retried per
  statement, i.e. per token segment or page, never per job: ``ResilientSession`` wraps the
  session the engine reads through, using tenacity (``READ_ATTEMPTS`` attempts, exponential
  back-off from 0.5 s up to 4 s, at most ``READ_RETRY_SECONDS`` in all); its
  ``on_transient`` hears of each one first (a read-rate cap halves its rate:
  ``reconciliation.ratelimit``).
* **Target PostgreSQL**: a new short-lived psycopg connection per use (nothing cached, so
  nothing goes stale); a refused connection is ``StoreUnavailable``.
* **App database** (Django's connection): ``ensure_app_database`` drops a connection that
  died (a PostgreSQL restart) so the next query opens a fresh one.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from cassandra import (
    ConsistencyLevel,
    CoordinationFailure,
    OperationTimedOut,
    ReadTimeout,
    Unavailable,
)
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    ResponseFuture,
    Session,
)
from cassandra.connection import ConnectionException
from cassandra.policies import (
    ConstantReconnectionPolicy,
    DCAwareRoundRobinPolicy,
    TokenAwarePolicy,
)
from cassandra.protocol import IsBootstrappingErrorMessage, OverloadedErrorMessage
from cassandra.query import dict_factory
from django.db import connection
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from cdcrecon.conf import settings

logger = logging.getLogger(__name__)
T = TypeVar("T")

_lock = threading.Lock()
_session: tuple[int, Cluster, Session] | None = None

RECONNECT_SECONDS = 1.0  # how often the driver tries a node it saw go down
PROBE_TIMEOUT_SECONDS = 5.0
READ_ATTEMPTS = 4  # per statement: the first try and three retries
READ_RETRY_SECONDS = 20.0  # never spend longer than this on one statement's retries
PROBE_QUERY = "SELECT release_version FROM system.local"


class StoreUnavailable(RuntimeError):
    """Cassandra or PostgreSQL could not be reached; the message says which and why."""


def consistency_level(name: str | None = None) -> int:
    value = name or settings.cassandra.consistency
    return int(getattr(ConsistencyLevel, value))


def _where() -> str:
    return f"{','.join(settings.cassandra.hosts)}:{settings.cassandra.port}"


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
        # The default exponential back-off leaves a returned node marked down for up to
        # minutes; a constant one second brings it back almost at once.
        reconnection_policy=ConstantReconnectionPolicy(RECONNECT_SECONDS, max_attempts=None),
        idle_heartbeat_interval=10,
    )


def cassandra_session() -> Session:
    """This process's Cassandra session, connected on first use (not probed: see
    ``healthy_cassandra_session``)."""
    global _session
    with _lock:
        if _session is not None and _session[0] == os.getpid() and not _session[1].is_shutdown:
            return _session[2]
        cluster = _build_cluster()
        try:
            session = cluster.connect()
        except Exception as exc:
            cluster.shutdown()
            raise StoreUnavailable(f"Cassandra at {_where()} is unreachable: {exc}") from exc
        _session = (os.getpid(), cluster, session)
        return session


def close_cassandra() -> None:
    """Forget this process's session (shut down); the next use connects from scratch."""
    global _session
    with _lock:
        stale, _session = _session, None
    if stale is not None and stale[0] == os.getpid():
        try:
            stale[1].shutdown()
        except Exception:  # a broken cluster may fail to shut down cleanly: it is gone anyway
            logger.debug("Shutting down a broken Cassandra cluster object failed", exc_info=True)


def probe_cassandra(session: Session) -> str:
    """One cheap query on ``session``; Cassandra's release version."""
    row = session.execute(PROBE_QUERY, timeout=PROBE_TIMEOUT_SECONDS).one()
    if row is None:  # pragma: no cover - system.local always has its row
        raise StoreUnavailable(f"Cassandra at {_where()} answered without system.local.")
    return str(row["release_version"] if isinstance(row, dict) else row[0])


def healthy_cassandra_session() -> Session:
    """This process's session, checked with a probe; rebuilt once if the probe fails.

    StoreUnavailable (naming Cassandra and the error) when even a fresh session fails.
    """
    try:
        session = cassandra_session()
        probe_cassandra(session)
        return session
    except Exception as exc:  # defunct connections, NoHostAvailable, a shut-down cluster
        logger.warning("Cassandra session is broken (%s); reconnecting", exc)
        close_cassandra()
    session = cassandra_session()  # StoreUnavailable when Cassandra still refuses
    try:
        probe_cassandra(session)
    except Exception as exc:
        close_cassandra()
        raise StoreUnavailable(f"Cassandra at {_where()} is unreachable: {exc}") from exc
    return session


def cassandra_health() -> str:
    """``/readyz``'s Cassandra check: the very judgement a job makes before it reads."""
    return f"Cassandra {probe_cassandra(healthy_cassandra_session())}"


# -- transient read errors -------------------------------------------------------------------

_TRANSIENT_ERRORS = (
    OperationTimedOut,
    ReadTimeout,
    Unavailable,
    CoordinationFailure,
    OverloadedErrorMessage,
    IsBootstrappingErrorMessage,
    ConnectionException,
)


def is_transient(exc: BaseException) -> bool:
    """Worth another try of the same statement: a timeout, an overloaded or unavailable
    replica, or no host answering right now (a node restarting)."""
    if isinstance(exc, NoHostAvailable):
        return True
    return isinstance(exc, _TRANSIENT_ERRORS)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    logger.warning("Cassandra read failed (attempt %s): %s; retrying", state.attempt_number, error)


#: Told of every transient error before its retry (a read-rate cap backs off).
OnTransient = Callable[[BaseException], None]


def retrying(action: Callable[[], T], on_transient: OnTransient | None = None) -> T:
    """``action()``, retried on transient Cassandra errors with bounded exponential back-off
    (``on_transient`` is told of each error before the wait)."""

    def before_sleep(state: RetryCallState) -> None:
        _log_retry(state)
        error = state.outcome.exception() if state.outcome else None
        if on_transient is not None and error is not None:
            on_transient(error)

    for attempt in Retrying(
        stop=stop_after_attempt(READ_ATTEMPTS) | stop_after_delay(READ_RETRY_SECONDS),
        wait=wait_exponential(multiplier=0.5, min=0.5, max=4),
        retry=retry_if_exception(is_transient),
        before_sleep=before_sleep,
        reraise=True,
    ):
        with attempt:
            return action()
    raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover


class _RetryingResult:
    """A ResultSet whose next page is fetched again (from its paging state) on a transient
    error, so one bad moment costs one page, not the segment."""

    def __init__(self, owner: ResilientSession, query: Any, kwargs: dict[str, Any], result: Any):
        self._owner = owner
        self._query = query
        self._kwargs = kwargs
        self._result = result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._result, name)

    def __iter__(self) -> Any:
        return iter(self._result)

    @property
    def current_rows(self) -> Any:
        return self._result.current_rows

    @property
    def has_more_pages(self) -> bool:
        return bool(self._result.has_more_pages)

    def fetch_next_page(self) -> None:
        paging_state = self._result.paging_state
        try:
            self._result.fetch_next_page()
        except Exception as exc:
            if not is_transient(exc) or paging_state is None:
                raise
            logger.warning("Cassandra page fetch failed (%s); resuming from its paging state", exc)
            self._owner.transient(exc)
            kwargs = {**self._kwargs, "paging_state": paging_state}
            self._result = self._owner.retrying(
                lambda: self._owner.session.execute(self._query, **kwargs)
            )


class _RetryingFuture:
    """A ResponseFuture whose ``result()`` runs the statement again on a transient error."""

    def __init__(
        self, owner: ResilientSession, query: Any, kwargs: dict[str, Any], future: ResponseFuture
    ):
        self._owner = owner
        self._query = query
        self._kwargs = kwargs
        self._future = future

    def __getattr__(self, name: str) -> Any:
        return getattr(self._future, name)

    def result(self) -> Any:
        try:
            return self._future.result()
        except Exception as exc:
            if not is_transient(exc):
                raise
            logger.warning("Cassandra read failed (%s); retrying", exc)
            self._owner.transient(exc)
            return self._owner.retrying(
                lambda: self._owner.session.execute(self._query, **self._kwargs)
            )


class ResilientSession:
    """The session the engine reads through: ``execute`` and ``execute_async`` retry
    transient errors per statement (``retrying``); everything else is the driver's session.
    ``on_transient`` hears of each transient error (a read-rate cap backs off on it)."""

    def __init__(self, session: Session, on_transient: OnTransient | None = None) -> None:
        self.session = session
        self.on_transient = on_transient

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)

    def transient(self, exc: BaseException) -> None:
        if self.on_transient is not None:
            self.on_transient(exc)

    def retrying(self, action: Callable[[], T]) -> T:
        return retrying(action, self.on_transient)

    def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        if args:  # positional parameters: keep the driver's signature
            kwargs = {"parameters": args[0], **kwargs}
        result = self.retrying(lambda: self.session.execute(query, **kwargs))
        return _RetryingResult(self, query, kwargs, result)

    def execute_async(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        if args:
            kwargs = {"parameters": args[0], **kwargs}
        future = self.session.execute_async(query, **kwargs)
        return _RetryingFuture(self, query, kwargs, future)


# -- PostgreSQL -----------------------------------------------------------------------------


def target_connection(**kwargs: object) -> psycopg.Connection:
    """A new connection to the target PostgreSQL database (the caller closes it)."""
    try:
        return psycopg.connect(settings.target.database_url, connect_timeout=5, **kwargs)  # type: ignore[arg-type]
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"Target PostgreSQL is unreachable: {exc}".strip()) from exc


def target_health() -> str:
    with target_connection() as conn:
        conn.execute("SELECT 1")
    return "ok"


def ensure_app_database() -> None:
    """Make Django's connection usable: one that died (a PostgreSQL restart) is dropped, so
    the next query opens a fresh one.  Inside a transaction nothing is touched (closing
    there would break the transaction's atomicity)."""
    if connection.in_atomic_block:
        return
    if connection.connection is not None and not connection.is_usable():
        logger.warning("The app database connection is broken; reconnecting")
        connection.close()
    connection.ensure_connection()
