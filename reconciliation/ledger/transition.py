"""Moving a difference between statuses: ``transition`` for one row, ``write_events`` for the
history of a batch (a run's findings, a heal).  Both obey ``statuses.TRANSITIONS``.

This module names no model: it works on the mismatch instance it is given (its class, its
``events`` relation), so the model layer can call it for ``Mismatch.resolve`` / ``reopen``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from psycopg import sql

from reconciliation.choices import Actor as ActorKind
from reconciliation.ledger.statuses import check


@dataclass(frozen=True)
class Actor:
    """Who makes a move: its kind (the transition table's column) and a name for people."""

    kind: str
    name: str
    user: Any = None  # the operator, when there is one
    job_id: uuid.UUID | None = None

    @classmethod
    def run(cls, job: Any) -> Actor:
        return cls(ActorKind.RUN, f"{job.validation_strategy} job {job.job_id}", job_id=job.pk)

    @classmethod
    def operator(cls, user: Any) -> Actor:
        return cls(ActorKind.OPERATOR, _username(user), user=_real(user))

    @classmethod
    def recheck(cls, user: Any = None) -> Actor:
        """A re-check: the in-flight one (no user), or asked for by an operator (named)."""
        name = _username(user) if user is not None else "the in-flight re-check"
        return cls(ActorKind.RECHECK, name, user=_real(user))

    @classmethod
    def policy(cls, user: Any, job_id: uuid.UUID | None = None) -> Actor:
        """A table's repair policy, acting as its own user (``policy:<table>``)."""
        return cls(ActorKind.POLICY, _username(user), user=_real(user), job_id=job_id)


def _username(user: Any) -> str:
    name = getattr(user, "get_username", lambda: "")() if user is not None else ""
    return str(name or "unknown")


def _real(user: Any) -> Any:
    return user if getattr(user, "is_authenticated", False) else None


class StatusChanged(Exception):
    """The row was no longer in the status the move started from (someone else moved it)."""


def transition(
    mismatch: Any,
    to: str,
    *,
    actor: Actor,
    reason: str,
    fields: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
    from_status: str | None = None,
    event: dict[str, Any] | None = None,
) -> None:
    """Move ``mismatch`` from the status it was loaded with to ``to``, by ``actor``.

    One conditional UPDATE (``WHERE resolution_status = <loaded status>``) sets the status and
    ``fields``, and one history event records the move, in one transaction; 0 rows updated
    raises ``StatusChanged`` (another worker or operator moved it first).  The instance is
    updated in place.  Staying in the same status writes the fields and no event.
    ``from_status``: the status it was loaded with, when the instance was changed since.
    ``event``: more fields of the history event (an arrival's ``arrival_seconds``).
    """
    old = from_status or mismatch.resolution_status
    check(old, to, actor.kind)
    now = now or timezone.now()
    values = {**(fields or {}), "resolution_status": to}
    model = type(mismatch)
    with transaction.atomic():
        if not model.objects.filter(pk=mismatch.pk, resolution_status=old).update(**values):
            raise StatusChanged(mismatch.pk)
        if old != to:
            mismatch.events.create(
                from_status=old,
                to_status=to,
                at=now,
                actor_kind=actor.kind,
                actor=actor.name,
                job_id=actor.job_id,
                reason=reason,
                **(event or {}),
            )
    for name, value in values.items():
        setattr(mismatch, name, value)


@dataclass(frozen=True)
class Event:
    """One move of a batch, for ``write_events``."""

    mismatch_id: uuid.UUID
    old: str | None
    new: str
    reason: str


def write_events(table: str, events: Iterable[Event], actor: Actor, now: dt.datetime) -> int:
    """Record a batch's moves in the history table ``table`` with one COPY (each checked
    against the transition table; a row that stayed put is no move).  Returns how many."""
    rows = []
    for event in events:
        check(event.old, event.new, actor.kind)
        if event.old != event.new:
            rows.append(
                (
                    event.mismatch_id,
                    event.old or "",
                    event.new,
                    now,
                    actor.kind,
                    actor.name,
                    actor.job_id,
                    event.reason,
                )
            )
    if not rows:
        return 0
    columns = (
        "mismatch_id",
        "from_status",
        "to_status",
        "at",
        "actor_kind",
        "actor",
        "job_id",
        "reason",
    )
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
    return len(rows)
