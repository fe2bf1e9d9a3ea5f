"""Schemathesis over the whole OpenAPI schema: no generated request, valid or not, gets a 5xx,
and every response matches the schema's documented shapes and content types.

Requests go through the Django WSGI application in this process (inside the test's
transaction), authenticated as a superuser, ten examples per operation and generation mode.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)
from schemathesis.generation import GenerationMode

from cdcrecon.api.tokens import issue_token
from tests.factories import JobFactory, MismatchFactory, UserFactory

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=10
)


@pytest.fixture(autouse=True)
def keep_the_test_connection_open() -> Iterator[None]:
    """Like Django's test client: the WSGI handler must not close the connection that holds
    the test's transaction at the end of each request."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def superuser_token(db: None) -> str:
    user = UserFactory(is_superuser=True, is_staff=True)
    # Something to find, so that the reads also serialize rows, not only empty pages.
    MismatchFactory.create_batch(3, job=JobFactory(table_name="users"))
    return issue_token(user)[1]


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_request_gets_a_server_error(case, superuser_token) -> None:
    response = case.call(headers={"Authorization": f"Bearer {superuser_token}"})

    case.validate_response(
        response,
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
    )
    assert response.status_code < 500
