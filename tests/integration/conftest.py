"""Fixtures for the integration tests: API clients holding given permissions.

The Celery broker and worker fixtures are in tests/conftest.py (the e2e tests use them too).
"""

from __future__ import annotations

from collections.abc import Callable
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
