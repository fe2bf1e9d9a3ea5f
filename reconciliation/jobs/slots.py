"""Who may run what, and the sign of life: job slots, run locks and the heartbeat.

**Job slots.**  At most ``RECONCILIATION_MAX_CONCURRENT_JOBS`` jobs execute at once across
all workers.  The semaphore is N PostgreSQL advisory locks, ``(JOB_SLOT_LOCK_KEY, slot)``
for slot in 0..N-1, taken with ``pg_try_advisory_lock`` by a job's coordinator on a
connection of its own that lives exactly as long as the run: if the worker dies, PostgreSQL
ends the session and frees the slot, so no slot is ever lost.  "Never two RUNNING jobs on
one table" is a separate guarantee, given by the partial unique index behind
``create_job``.

**Run locks.**  The same kind of lock, ``(SEGMENT_LOCK_KEY, segment id)``, is held by
whichever worker runs a segment (on a connection each worker process keeps for them), and
``(JOB_RUN_LOCK_KEY, job)`` by a job's coordinator (and ``locks.repair_policy_lock`` by
whoever runs a table's repair policy: one run per table at a time).
A second delivery of the same task finds the lock taken and does nothing; a segment marked
RUNNING whose lock is free was being run by a process that died, and may be taken over.

**Heartbeat.**  A small thread touches the job every third of
``RECONCILIATION_HEARTBEAT_TIMEOUT_SECONDS`` while its coordinator runs, so one long query
does not look like a dead worker.  The thread dies with the worker, so the reaper
(``schedule.reap_stalled_jobs``) still catches a job whose coordinator died for good.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from django.db import connection

from cdcrecon.conf import settings
from reconciliation.locks import advisory_lock, second_key
from reconciliation.models import ReconciliationJob

logger = logging.getLogger(__name__)

# First keys of the two-int advisory locks (``locks.advisory_lock``: "cdrc", "cdrj", "cdrs").
JOB_SLOT_LOCK_KEY = 0x63647263
JOB_RUN_LOCK_KEY = 0x6364726A
SEGMENT_LOCK_KEY = 0x63647273


@contextmanager
def job_slot(slots: int | None = None) -> Iterator[int | None]:
    """Hold one of ``slots`` (default: max_concurrent_jobs) job slots; yield its number or
    None when every slot is taken."""
    slots = settings.reconciliation.max_concurrent_jobs if slots is None else slots
    with advisory_lock(JOB_SLOT_LOCK_KEY, list(range(slots))) as slot:
        yield slot


@contextmanager
def job_run_lock(job_id: uuid.UUID) -> Iterator[bool]:
    """Hold the right to coordinate ``job_id``; False when another process has it."""
    with advisory_lock(JOB_RUN_LOCK_KEY, [second_key(job_id)]) as held:
        yield held is not None


_segment_locks = threading.local()


def _segment_lock_connection() -> Any:
    """This thread's connection for segment locks, opened once and kept: a worker takes a
    segment lock (and tries several) every few seconds, and a new connection each time
    costs more than the lock.  It dies with the process, and its locks with it."""
    conn = getattr(_segment_locks, "conn", None)
    if conn is None or conn.closed or conn.broken:
        conn = connection.get_new_connection(connection.get_connection_params())
        conn.autocommit = True
        _segment_locks.conn = conn
    return conn


def close_segment_lock_connection() -> None:
    """Close this thread's kept segment-lock connection (its locks go with it)."""
    conn = getattr(_segment_locks, "conn", None)
    _segment_locks.conn = None
    if conn is not None:
        conn.close()


@contextmanager
def segment_lock(segment_id: int) -> Iterator[bool]:
    """Hold the right to run segment ``segment_id``; False when another process has it."""
    key = (SEGMENT_LOCK_KEY, second_key(segment_id))
    try:
        conn = _segment_lock_connection()
        row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", key).fetchone()
    except psycopg.OperationalError:  # the kept connection died (a PostgreSQL restart)
        _segment_locks.conn = None
        conn = _segment_lock_connection()
        row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", key).fetchone()
    held = bool(row and row[0])
    try:
        yield held
    finally:
        if held:
            try:
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", key)
            except Exception:  # the session is gone: so is its lock
                logger.debug("Could not unlock segment %s", segment_id, exc_info=True)
                _segment_locks.conn = None


def slot_wait_seconds() -> int:
    """How long a job waits before asking for a slot again: well inside the heartbeat timeout."""
    return max(1, min(5, settings.reconciliation.heartbeat_timeout_seconds // 4))


class Heartbeat:
    """Touch a job every ``interval`` seconds from a background thread while it runs."""

    def __init__(self, job_id: Any, interval: float | None = None) -> None:
        self.job_id = job_id
        self.interval = interval or max(1.0, settings.reconciliation.heartbeat_timeout_seconds / 3)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{job_id}", daemon=True)

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    ReconciliationJob(pk=self.job_id).touch()
                except Exception:  # a missed beat is not worth killing the job for
                    logger.warning("Heartbeat for job %s failed", self.job_id, exc_info=True)
                    connection.close()  # a dead connection: the next beat opens anew
        finally:
            connection.close()  # this thread's own Django connection

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
