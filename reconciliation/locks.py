"""PostgreSQL advisory locks on a connection of their own: the primitive behind job slots and
run locks (``jobs.slots``) and the one-run-per-table lock of a repair policy.

A lock lives exactly as long as its connection: a process that dies frees it with its
session, so no lock is ever lost.  Nothing here imports the app's models, so any module may
take a lock without depending on the jobs package.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

logger = logging.getLogger(__name__)

REPAIR_POLICY_LOCK_KEY = 0x63647261  # "cdra"


def second_key(value: int | uuid.UUID) -> int:
    """An advisory lock's second key (an int4) for a segment id or a job's uuid."""
    number = value.int if isinstance(value, uuid.UUID) else int(value)
    return number % 2**31


@contextmanager
def advisory_lock(first: int, candidates: list[int]) -> Iterator[int | None]:
    """Hold the first free lock ``(first, c)`` of ``candidates`` on a dedicated connection
    (not Django's, so nothing the caller does with Django's connection can drop it); yield
    the candidate taken, or None."""
    conn = connection.get_new_connection(connection.get_connection_params())
    acquired: int | None = None
    try:
        conn.autocommit = True
        for candidate in candidates:
            row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (first, candidate)).fetchone()
            if row and row[0]:
                acquired = candidate
                break
        yield acquired
    finally:
        try:
            if acquired is not None and not conn.closed:
                # Released now, not when the server notices the session ended.
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", (first, acquired))
        except Exception:  # the session is gone: so is its lock
            logger.debug("Could not unlock (%s, %s)", first, acquired, exc_info=True)
        finally:
            conn.close()


@contextmanager
def repair_policy_lock(mapping_id: int) -> Iterator[bool]:
    """Hold the right to run a table's repair policy; False when another process has it."""
    with advisory_lock(REPAIR_POLICY_LOCK_KEY, [second_key(mapping_id)]) as held:
        yield held is not None
