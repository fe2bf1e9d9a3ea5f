"""Fixtures for the integration tests: API clients holding given permissions; a log of the
writes made to a target table.

The Celery broker and worker fixtures are in tests/conftest.py (the e2e tests use them too).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from cdcrecon.api.tokens import issue_token
from tests.factories import UserFactory

VIEW_JOBS = "reconciliation.view_reconciliationjob"
TRIGGER_JOBS = "reconciliation.add_reconciliationjob"
RESOLVE_MISMATCHES = "reconciliation.change_mismatch"


def grant(user: Any, *permissions: str) -> None:
    for permission in permissions:
        app_label, codename = permission.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )


@pytest.fixture
def api_client(db: None) -> Callable[..., APIClient]:
    """``api_client(*permissions, superuser=False)``: an APIClient sending a Bearer token.

    The client's ``user`` attribute is the user behind the token.
    """

    def make(*permissions: str, superuser: bool = False) -> APIClient:
        user = UserFactory(is_superuser=superuser, is_staff=superuser)
        grant(user, *permissions)
        _, token = issue_token(user)  # a django-rest-knox token: only its digest is stored
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        client.user = user  # type: ignore[attr-defined]
        client.token = token  # type: ignore[attr-defined]
        return client

    return make


@pytest.fixture
def reader(api_client: Callable[..., APIClient]) -> APIClient:
    """May read jobs and mismatches, nothing else."""
    return api_client(VIEW_JOBS)


@pytest.fixture
def operator(api_client: Callable[..., APIClient]) -> APIClient:
    """May read, trigger and resolve."""
    return api_client(VIEW_JOBS, TRIGGER_JOBS, RESOLVE_MISMATCHES)


@pytest.fixture
def superuser_api(api_client: Callable[..., APIClient]) -> APIClient:
    return api_client(superuser=True)


@pytest.fixture
def write_log(target: Any) -> Iterator[Callable[[Any], str]]:
    """``write_log(mapping)``: log every write to the mapping's target table (a trigger of
    its own) in a table whose name it returns (``target_writes`` counts them per key); both
    are dropped after the test."""
    made: list[str] = []

    def make(mapping: Any) -> str:
        table, log = mapping.postgres_table, f"{mapping.postgres_table}_writes"
        made.append(log)
        target.execute(f"CREATE TABLE public.{log} (id text, op text)")
        target.execute(
            f"CREATE FUNCTION public.{log}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"INSERT INTO public.{log} VALUES (COALESCE(NEW.id, OLD.id), TG_OP); RETURN NULL; "
            "END $$"
        )
        target.execute(
            f"CREATE TRIGGER {log} AFTER INSERT OR UPDATE OR DELETE ON public.{table} "
            f"FOR EACH ROW EXECUTE FUNCTION public.{log}()"
        )
        return log

    yield make
    for log in made:
        target.execute(f"DROP TABLE IF EXISTS public.{log}")
        target.execute(f"DROP FUNCTION IF EXISTS public.{log}() CASCADE")


def target_writes(target: Any, log: str) -> dict[str, int]:
    """How many writes ``write_log``'s table ``log`` saw, per key (the ``id`` column)."""
    rows = target.execute(f"SELECT id, count(*) FROM public.{log} GROUP BY id").fetchall()
    return dict(rows)
