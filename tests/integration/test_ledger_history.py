"""A difference's history (issue 28): every status change, whoever makes it (a run, a
re-check, an operator, a repair policy), leaves exactly one event, served by
``GET /reconciliation/mismatches/{id}/history`` and shown on the admin page.

Real Cassandra and PostgreSQL; jobs run as the worker runs them.
"""

from __future__ import annotations

from typing import Any

import pytest

from reconciliation.choices import Actor, ResolutionStatus
from reconciliation.models import Mismatch, MismatchEvent
from reconciliation.repair.policy import run_policy
from tests.integration import test_ledger
from tests.integration.test_ledger import fix_on_target, ledger, put_postgres, run
from tests.support import latest_event

S = ResolutionStatus
# The ledger tests' planted drift (ten users, four differences) and their operator.
users = test_ledger.users
alice = test_ledger.alice


def moves(mismatch: Mismatch) -> list[tuple[str, str, str]]:
    """The mismatch's history as (from, to, actor kind), oldest first."""
    return [
        (e.from_status, e.to_status, e.actor_kind)
        for e in MismatchEvent.objects.filter(mismatch=mismatch).order_by("at", "pk")
    ]


def assert_chain(mismatch: Mismatch) -> None:
    """The events chain from "new" to the status the row has now, one move at a time."""
    history = moves(mismatch)
    assert history and history[0][0] == ""
    for earlier, later in zip(history, history[1:], strict=False):
        assert earlier[1] == later[0], history
        assert earlier[0] != earlier[1], history  # staying put is no event
    assert history[-1][1] == mismatch.resolution_status, history


def test_every_status_change_leaves_exactly_one_event(users, target, operator, alice) -> None:
    first = run(users)
    user1, user2 = ledger(users, "user-1"), ledger(users, "user-2")
    assert moves(user1) == [("", S.PENDING, Actor.RUN)]
    assert latest_event(user1).job_id == first.pk

    run(users)  # found again, unchanged: no move, no event
    assert len(moves(user1)) == 1

    # An operator ignores it (the API), then reopens it (the admin's method).
    response = operator.post(
        f"/reconciliation/mismatches/{user1.mismatch_id}/resolve",
        {"resolution_status": "IGNORED", "resolution_notes": "test account"},
        format="json",
    )
    assert response.status_code == 200, response.content
    user1.refresh_from_db()
    assert moves(user1)[-1] == (S.PENDING, S.IGNORED, Actor.OPERATOR)
    assert latest_event(user1).reason == "test account"
    assert latest_event(user1).actor == operator.user.get_username()
    user1.reopen(alice, "not a test account after all")
    assert moves(user1)[-1] == (S.IGNORED, S.PENDING, Actor.OPERATOR)
    assert user1.resolution_notes == "test account\n\nnot a test account after all"

    # A covering run heals a key fixed on the target; found again, it reappears.
    fix_on_target(target, users, "user-2")
    healer = run(users)
    user2.refresh_from_db()
    assert moves(user2)[-1] == (S.PENDING, S.AUTO_RESOLVED, Actor.RUN)
    assert latest_event(user2).job_id == healer.pk
    target.execute(f"UPDATE public.{users.name} SET score = -7 WHERE id = 'user-2'")
    run(users)
    user2.refresh_from_db()
    assert moves(user2)[-1] == (S.AUTO_RESOLVED, S.PENDING, Actor.RUN)

    # An operator's re-check finds it equal now.
    fix_on_target(target, users, "user-2")
    assert (
        operator.post(f"/reconciliation/mismatches/{user2.mismatch_id}/recheck").json()["outcome"]
        == "closed"
    )
    user2.refresh_from_db()
    assert moves(user2)[-1] == (S.PENDING, S.AUTO_RESOLVED, Actor.RECHECK)

    # The table's repair policy repairs what is left.
    users.repair_policy, users.repair_min_age_seconds = "on", 0
    users.save()
    last = run(users)
    run_policy(last.pk)
    user1.refresh_from_db()
    assert user1.resolution_status == S.AUTO_REPAIRED
    assert moves(user1)[-1] == (S.PENDING, S.AUTO_REPAIRED, Actor.POLICY)
    assert latest_event(user1).actor == f"policy:{users.name}"

    for mismatch in Mismatch.objects.filter(table_name=users.name):
        assert_chain(mismatch)
    assert len(moves(user1)) == 4 and len(moves(user2)) == 4


def test_the_history_endpoint_pages_the_events_oldest_first(users, target, reader, alice) -> None:
    run(users)
    mismatch = ledger(users, "user-1")
    mismatch.resolve(alice, S.IGNORED, "known")
    mismatch.reopen(alice, "not known")
    url = f"/reconciliation/mismatches/{mismatch.mismatch_id}/history"

    body = reader.get(url).json()
    assert (body["total"], body["limit"], body["offset"]) == (3, 100, 0)
    assert [(e["from_status"], e["to_status"], e["actor_kind"]) for e in body["events"]] == [
        (None, "PENDING", "run"),
        ("PENDING", "IGNORED", "operator"),
        ("IGNORED", "PENDING", "operator"),
    ]
    assert body["events"][0]["job_id"] == str(mismatch.job_id)
    assert body["events"][2] | {"at": None} == {
        "from_status": "IGNORED",
        "to_status": "PENDING",
        "at": None,
        "actor_kind": "operator",
        "actor": "alice",
        "job_id": None,
        "reason": "not known",
    }
    page = reader.get(url, {"limit": 1, "offset": 1}).json()
    assert [e["to_status"] for e in page["events"]] == ["IGNORED"] and page["total"] == 3


@pytest.mark.parametrize("mismatch_id", ["7f3c0d8e-0000-4000-8000-000000000000", "not-a-uuid"])
def test_the_history_of_no_mismatch_is_a_json_404(reader, db, mismatch_id: str) -> None:
    response = reader.get(f"/reconciliation/mismatches/{mismatch_id}/history")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found" and mismatch_id in response.json()["detail"]


def test_the_history_is_bad_paging_aware_and_in_the_schema(users, reader) -> None:
    run(users)
    mismatch = ledger(users, "user-1")
    url = f"/reconciliation/mismatches/{mismatch.mismatch_id}/history"
    response = reader.get(url, {"limit": 0})
    assert response.status_code == 400 and "limit" in response.json()["fields"]
    schema = reader.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/reconciliation/mismatches/{mismatch_id}/history"]["get"]
    assert operation["operationId"] == "get_mismatch_history"
    assert {p["name"] for p in operation["parameters"]} >= {"mismatch_id", "limit", "offset"}


def test_the_admin_page_shows_the_timeline(users, target, admin_client: Any, alice) -> None:
    run(users)
    mismatch = ledger(users, "user-3")
    put_postgres(target, users.name, ("user-3", "u3@example.com", 3, None))
    mismatch.resolve(alice, S.MANUAL_RESOLVED, "copied by hand")

    page = admin_client.get(f"/admin/reconciliation/mismatch/{mismatch.pk}/change/")

    assert page.status_code == 200
    html = page.content.decode()
    assert 'class="mismatch-timeline"' in html
    assert "new → PENDING" in html and "PENDING → MANUAL_RESOLVED" in html
    assert "copied by hand" in html and "alice" in html
