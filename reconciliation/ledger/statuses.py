"""Which status a difference may move to, and who may move it there: the ledger's rules.

Pure (no database): ``TRANSITIONS`` is the table, ``check`` enforces it, and ``after_finding``
decides what a difference found (again) becomes.  ``ledger.transition`` applies a move to
one row and records it in the history; the bulk paths of a run (``ledger.record``) decide
each row here and write the same events.

The statuses: PENDING (drift, waiting for someone), IN_FLIGHT (within the CDC lag budget:
read again once it has passed), IGNORED (knowingly left), and the closed ones,
MANUAL_RESOLVED (an operator), AUTO_RESOLVED (the rows were found equal, or an operator's
repair) and AUTO_REPAIRED (a repair policy).  ``None`` stands for "not in the ledger yet".
"""

from __future__ import annotations

from reconciliation.choices import Actor, ResolutionStatus

PENDING = ResolutionStatus.PENDING
IN_FLIGHT = ResolutionStatus.IN_FLIGHT
IGNORED = ResolutionStatus.IGNORED
MANUAL_RESOLVED = ResolutionStatus.MANUAL_RESOLVED
AUTO_RESOLVED = ResolutionStatus.AUTO_RESOLVED
AUTO_REPAIRED = ResolutionStatus.AUTO_REPAIRED

#: A difference that still stands: waiting for an operator, or knowingly ignored.
OPEN_STATUSES = (PENDING, IGNORED)
#: The statuses that hold a key's one row that is not closed (``one_open_mismatch_per_key``).
KEY_HOLDING_STATUSES = (*OPEN_STATUSES, IN_FLIGHT)
#: Closed by someone (or by a covering run); found again, the same object reopens.
RESOLVED_STATUSES = (MANUAL_RESOLVED, AUTO_RESOLVED, AUTO_REPAIRED)
#: What an operator may close a PENDING difference as.
OPERATOR_CLOSES = (MANUAL_RESOLVED, AUTO_RESOLVED, IGNORED)
#: What an operator may put back to PENDING.
REOPENABLE = (MANUAL_RESOLVED, AUTO_RESOLVED, IGNORED, AUTO_REPAIRED)

RUN, RECHECK, OPERATOR, POLICY = Actor.RUN, Actor.RECHECK, Actor.OPERATOR, Actor.POLICY

#: (from, to) -> who may make that move.  A finding (a run's, or a re-check's that still
#: sees a difference) opens, reopens or moves a difference between PENDING and IN_FLIGHT;
#: rows found equal close it; operators close and reopen; a policy repairs.
TRANSITIONS: dict[tuple[str | None, str], frozenset[str]] = {
    (None, PENDING): frozenset({RUN}),
    (None, IN_FLIGHT): frozenset({RUN}),
    (PENDING, IN_FLIGHT): frozenset({RUN, RECHECK}),
    (IN_FLIGHT, PENDING): frozenset({RUN, RECHECK}),
    (PENDING, AUTO_RESOLVED): frozenset({RUN, RECHECK, OPERATOR, POLICY}),
    (IN_FLIGHT, AUTO_RESOLVED): frozenset({RUN, RECHECK}),
    (IGNORED, AUTO_RESOLVED): frozenset({RUN, RECHECK}),
    (PENDING, MANUAL_RESOLVED): frozenset({OPERATOR}),
    (PENDING, IGNORED): frozenset({OPERATOR}),
    (PENDING, AUTO_REPAIRED): frozenset({POLICY}),
    (IGNORED, PENDING): frozenset({RUN, RECHECK, OPERATOR}),
    (IGNORED, IN_FLIGHT): frozenset({RUN, RECHECK}),
    **{(closed, PENDING): frozenset({RUN, RECHECK, OPERATOR}) for closed in RESOLVED_STATUSES},
    **{(closed, IN_FLIGHT): frozenset({RUN, RECHECK}) for closed in RESOLVED_STATUSES},
}


class IllegalTransition(ValueError):
    """A move the transition table does not allow (a bug in the caller, or a bad request)."""


def allowed(old: str | None, new: str, actor: str) -> bool:
    """Whether ``actor`` may move a difference from ``old`` to ``new`` (staying is no move)."""
    return old == new or actor in TRANSITIONS.get((old, new), frozenset())


def check(old: str | None, new: str, actor: str) -> None:
    """Raise ``IllegalTransition`` unless ``allowed``."""
    if not allowed(old, new, actor):
        was = old or "(new)"
        raise IllegalTransition(
            f"{Actor(actor).label} cannot move a difference from {was} to {new}."
        )


# What a finding did to a difference (``after_finding``).
NEW = "new"
SEEN = "seen"
STILL_IGNORED = "still_ignored"
REOPENED = "reopened"
REAPPEARED = "reappeared"


def after_finding(old: str | None, *, same_rows: bool, in_flight: bool) -> tuple[str, str]:
    """A difference was found (again): its new status and what happened (the one definition
    of the lifecycle; runs and re-checks both come here).

    * new or PENDING: PENDING;
    * IGNORED: stays ignored while both checksums equal those stored when it was ignored
      (``same_rows``); otherwise reopens as PENDING;
    * closed (resolved or repaired): reappears as PENDING;
    * IN_FLIGHT: PENDING (the finding is a plain difference now).

    A finding ``in_flight`` (its source row is younger than the CDC lag budget) is IN_FLIGHT
    wherever the rules give PENDING.
    """
    if old is None:
        outcome = NEW
    elif old == IGNORED:
        if same_rows:
            return IGNORED, STILL_IGNORED
        outcome = REOPENED
    elif old in RESOLVED_STATUSES:
        outcome = REAPPEARED
    else:
        outcome = SEEN
    return (IN_FLIGHT if in_flight else PENDING), outcome
