"""POST /reconciliation/mismatches/{mismatch_id}/resolve: via Mismatch.resolve, once."""

from __future__ import annotations

import uuid

import pytest

from reconciliation.choices import ResolutionStatus
from tests.factories import MismatchFactory

pytestmark = pytest.mark.django_db


def resolve(client, mismatch_id, **body):
    return client.post(f"/reconciliation/mismatches/{mismatch_id}/resolve", body, format="json")


def test_it_resolves_a_pending_mismatch_and_records_who_and_why(operator) -> None:
    mismatch = MismatchFactory()

    response = resolve(
        operator,
        mismatch.mismatch_id,
        resolution_status="MANUAL_RESOLVED",
        resolution_notes="Fixed by manual data sync",
    )

    assert response.status_code == 200
    mismatch.refresh_from_db()
    assert response.json() == {
        "status": "success",
        "mismatch": {
            "mismatch_id": str(mismatch.mismatch_id),
            "resolution_status": "MANUAL_RESOLVED",
            "resolved_at": mismatch.resolved_at.isoformat().replace("+00:00", "Z"),
        },
    }
    assert mismatch.resolution_status == ResolutionStatus.MANUAL_RESOLVED
    assert mismatch.resolution_notes == "Fixed by manual data sync"
    assert mismatch.resolved_by == operator.user


def test_a_mismatch_can_be_ignored(operator) -> None:
    mismatch = MismatchFactory()

    response = resolve(
        operator, mismatch.mismatch_id, resolution_status="IGNORED", resolution_notes="Test row"
    )

    assert response.status_code == 200
    assert response.json()["mismatch"]["resolution_status"] == "IGNORED"


def test_resolving_twice_is_a_409_saying_by_whom(operator, api_client) -> None:
    mismatch = MismatchFactory()
    first = resolve(
        operator, mismatch.mismatch_id, resolution_status="IGNORED", resolution_notes="noise"
    )
    assert first.status_code == 200
    second_operator = api_client("reconciliation.change_mismatch")

    response = resolve(
        second_operator,
        mismatch.mismatch_id,
        resolution_status="MANUAL_RESOLVED",
        resolution_notes="me too",
    )

    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "already_resolved"
    assert operator.user.username in body["detail"]
    assert body["resolved_by"] == operator.user.username
    assert body["resolution_status"] == "IGNORED"
    mismatch.refresh_from_db()
    assert (mismatch.resolution_status, mismatch.resolution_notes) == ("IGNORED", "noise")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"resolution_status": "PENDING", "resolution_notes": "x"}, "resolution_status"),
        ({"resolution_status": "FIXED", "resolution_notes": "x"}, "resolution_status"),
        ({"resolution_notes": "x"}, "resolution_status"),
        ({"resolution_status": "MANUAL_RESOLVED"}, "resolution_notes"),
        ({"resolution_status": "MANUAL_RESOLVED", "resolution_notes": "   "}, "resolution_notes"),
    ],
)
def test_a_bad_body_is_a_400_naming_the_field(operator, body, field) -> None:
    mismatch = MismatchFactory()

    response = resolve(operator, mismatch.mismatch_id, **body)

    assert response.status_code == 400
    assert field in response.json()["fields"]
    mismatch.refresh_from_db()
    assert mismatch.resolution_status == ResolutionStatus.PENDING


@pytest.mark.parametrize("mismatch_id", [uuid.uuid4(), "not-a-uuid"])
def test_an_unknown_or_malformed_mismatch_id_is_a_404(operator, mismatch_id) -> None:
    response = resolve(
        operator, mismatch_id, resolution_status="IGNORED", resolution_notes="whatever"
    )

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_resolving_needs_the_change_permission(reader) -> None:
    mismatch = MismatchFactory()

    response = resolve(
        reader, mismatch.mismatch_id, resolution_status="IGNORED", resolution_notes="nope"
    )

    assert response.status_code == 403
    mismatch.refresh_from_db()
    assert mismatch.resolution_status == ResolutionStatus.PENDING


def test_resolve_only_accepts_post(operator) -> None:
    mismatch = MismatchFactory()

    response = operator.get(f"/reconciliation/mismatches/{mismatch.mismatch_id}/resolve")

    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
