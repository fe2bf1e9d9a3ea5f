"""The ledger's transition table and lifecycle decision (reconciliation.ledger.statuses):
which status may move to which, by whom, and what a finding makes of a difference."""

from __future__ import annotations

import itertools

import pytest

from reconciliation.choices import Actor, ResolutionStatus
from reconciliation.ledger.statuses import (
    KEY_HOLDING_STATUSES,
    NEW,
    REAPPEARED,
    REOPENED,
    RESOLVED_STATUSES,
    SEEN,
    STILL_IGNORED,
    TRANSITIONS,
    IllegalTransition,
    after_finding,
    allowed,
    check,
)

S = ResolutionStatus


def test_only_runs_put_a_difference_in_the_ledger() -> None:
    for status, actor in itertools.product(S.values, Actor.values):
        expected = actor == Actor.RUN and status in (S.PENDING, S.IN_FLIGHT)
        assert allowed(None, status, actor) is expected, (status, actor)


def test_operators_close_only_pending_differences_and_never_as_repaired_or_in_flight() -> None:
    closes = {
        to for (old, to), who in TRANSITIONS.items() if Actor.OPERATOR in who and to != S.PENDING
    }
    assert closes == {S.MANUAL_RESOLVED, S.AUTO_RESOLVED, S.IGNORED}
    for (old, to), who in TRANSITIONS.items():
        if Actor.OPERATOR in who and to != S.PENDING:
            assert old == S.PENDING, (old, to)


def test_only_a_policy_repairs_and_a_policy_never_reopens() -> None:
    assert [key for key, who in TRANSITIONS.items() if S.AUTO_REPAIRED == key[1]] == [
        (S.PENDING, S.AUTO_REPAIRED)
    ]
    assert TRANSITIONS[(S.PENDING, S.AUTO_REPAIRED)] == {Actor.POLICY}
    assert not [
        key for key, who in TRANSITIONS.items() if Actor.POLICY in who and key[1] == S.PENDING
    ]


def test_every_closed_difference_can_reappear_by_a_run_and_be_reopened_by_an_operator() -> None:
    for closed in RESOLVED_STATUSES:
        assert allowed(closed, S.PENDING, Actor.RUN)
        assert allowed(closed, S.PENDING, Actor.OPERATOR)
        others = [s for s in RESOLVED_STATUSES if s != closed]
        assert not any(allowed(closed, s, a) for s in others for a in Actor.values)


def test_in_flight_differences_are_settled_by_runs_and_re_checks_only() -> None:
    for to in (S.PENDING, S.AUTO_RESOLVED):
        assert TRANSITIONS[(S.IN_FLIGHT, to)] == {Actor.RUN, Actor.RECHECK}
    for to in (S.MANUAL_RESOLVED, S.IGNORED, S.AUTO_REPAIRED):
        assert not any(allowed(S.IN_FLIGHT, to, actor) for actor in Actor.values)


def test_staying_put_is_always_allowed_and_no_move() -> None:
    for status, actor in itertools.product(S.values, Actor.values):
        assert allowed(status, status, actor)


def test_check_names_who_tried_what() -> None:
    with pytest.raises(IllegalTransition, match=r"operator .* from IN_FLIGHT to IGNORED"):
        check(S.IN_FLIGHT, S.IGNORED, Actor.OPERATOR)
    check(S.PENDING, S.IGNORED, Actor.OPERATOR)


@pytest.mark.parametrize(
    ("old", "same_rows", "in_flight", "expected"),
    [
        (None, False, False, (S.PENDING, NEW)),
        (None, False, True, (S.IN_FLIGHT, NEW)),
        (S.PENDING, True, False, (S.PENDING, SEEN)),
        (S.PENDING, False, True, (S.IN_FLIGHT, SEEN)),
        (S.IN_FLIGHT, True, False, (S.PENDING, SEEN)),
        (S.IGNORED, True, False, (S.IGNORED, STILL_IGNORED)),
        (S.IGNORED, True, True, (S.IGNORED, STILL_IGNORED)),
        (S.IGNORED, False, False, (S.PENDING, REOPENED)),
        (S.IGNORED, False, True, (S.IN_FLIGHT, REOPENED)),
        (S.MANUAL_RESOLVED, True, False, (S.PENDING, REAPPEARED)),
        (S.AUTO_REPAIRED, False, True, (S.IN_FLIGHT, REAPPEARED)),
    ],
)
def test_a_finding_decides_the_status(old, same_rows, in_flight, expected) -> None:
    assert after_finding(old, same_rows=same_rows, in_flight=in_flight) == expected


def test_every_status_a_finding_can_give_is_a_move_runs_and_re_checks_may_make() -> None:
    for old, same, fresh in itertools.product([None, *S.values], [True, False], [True, False]):
        new, _ = after_finding(old, same_rows=same, in_flight=fresh)
        assert allowed(old, new, Actor.RUN), (old, new)
        if old is not None:
            assert allowed(old, new, Actor.RECHECK), (old, new)
        assert new in KEY_HOLDING_STATUSES


def test_repair_writes_a_decimal_with_every_digit_the_source_holds() -> None:
    # normalize() rounds to 28 digits: …679000 instead of …678901.5 (issue 28).
    import decimal

    from reconciliation.repair.target_values import TargetColumn, text_of, to_json, to_target

    value = decimal.Decimal("1234567890123456789012345678901.50")
    assert text_of(value) == "1234567890123456789012345678901.5"
    assert to_json(value) == "1234567890123456789012345678901.5"
    text_column = TargetColumn("amount", "text", "text")
    assert to_target(value, text_column) == "1234567890123456789012345678901.5"
    assert to_target(value, TargetColumn("amount", "numeric", "numeric")) == value
    assert text_of(decimal.Decimal("-0.000")) == "0" and text_of(decimal.Decimal("1E+3")) == "1000"
