"""``manage.py drf_create_token -r USER`` (and ``create_api_token -r``) regenerates the
user's token as Django REST framework documents it: the earlier tokens stop working, the
new one (stored only as a digest) is printed once."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from knox.models import AuthToken
from rest_framework.test import APIClient

from cdcrecon.api.tokens import issue_token
from tests.factories import JobFactory, UserFactory

pytestmark = pytest.mark.django_db

COMMANDS = ["drf_create_token", "create_api_token"]


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def printed_token(out: str) -> str:
    found = re.findall(r"\b([0-9a-f]{64})\b", out)
    assert len(found) == 1, out
    return found[0]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("flag", ["-r", "--reset"])
def test_reset_revokes_the_earlier_tokens_and_prints_a_working_new_one(
    capsys, command, flag
) -> None:
    alice = UserFactory(username="alice", is_superuser=True)
    bob = UserFactory(username="bob", is_superuser=True)
    old = [issue_token(alice)[1] for _ in range(2)]
    _, bobs = issue_token(bob)
    JobFactory()

    call_command(command, flag, "alice")

    out = capsys.readouterr().out
    new = printed_token(out)
    assert "2 earlier tokens revoked" in out
    assert new not in old
    assert bearer(new).get("/reconciliation/jobs").status_code == 200
    for token in old:
        assert bearer(token).get("/reconciliation/jobs").status_code == 401
    assert AuthToken.objects.filter(user=alice).count() == 1
    assert bearer(bobs).get("/reconciliation/jobs").status_code == 200  # others' untouched
    assert new not in " ".join(AuthToken.objects.values_list("digest", flat=True))


@pytest.mark.parametrize("command", COMMANDS)
def test_reset_for_a_user_without_tokens_just_issues_one(capsys, command) -> None:
    UserFactory(username="carol", is_superuser=True)

    call_command(command, "carol", "-r", "--ttl-hours", "0")

    out = capsys.readouterr().out
    assert "never expires; 0 earlier tokens revoked" in out
    assert bearer(printed_token(out)).get("/reconciliation/jobs").status_code == 200


@pytest.mark.parametrize("command", COMMANDS)
def test_without_reset_the_earlier_tokens_keep_working(capsys, command) -> None:
    dave = UserFactory(username="dave", is_superuser=True)
    _, earlier = issue_token(dave)

    call_command(command, "dave")

    new = printed_token(capsys.readouterr().out)
    assert bearer(new).get("/reconciliation/jobs").status_code == 200
    assert bearer(earlier).get("/reconciliation/jobs").status_code == 200
    assert AuthToken.objects.filter(user=dave).count() == 2


@pytest.mark.parametrize("command", COMMANDS)
def test_reset_for_an_unknown_user_is_an_error_and_revokes_nothing(command) -> None:
    UserFactory(username="erin")
    issue_token(UserFactory(username="frank"))

    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command(command, "-r", "nobody")

    assert AuthToken.objects.count() == 1


def test_the_help_documents_reset(capsys) -> None:
    with pytest.raises(SystemExit):
        call_command("drf_create_token", "--help")

    out = capsys.readouterr().out
    assert "-r, --reset" in out
    assert "revoke" in out
