"""Fixtures of the GDPR erasure tests: the officer who may erase, and two seeded tables."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import psycopg
import pytest
from cassandra.cluster import Session
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from reconciliation.models import TableMapping
from tests.integration.erasure.support import (
    EVENTS_CASSANDRA,
    EVENTS_POSTGRES,
    USERS_CASSANDRA,
    USERS_POSTGRES,
    client_for,
    user_with,
)


@pytest.fixture
def dpo() -> User:
    """The data protection officer: may erase records."""
    return user_with("dpo", "erase_record")


@pytest.fixture
def api(dpo: User) -> APIClient:
    return client_for(dpo)


@pytest.fixture
def users(
    cassandra: Session, target: psycopg.Connection, table_pair: Callable[..., TableMapping]
) -> TableMapping:
    """A users table with alice, bob and carol in both stores."""
    mapping = table_pair(USERS_CASSANDRA, USERS_POSTGRES)
    for user_id, email, name in [
        ("user-alice", "alice@example.com", "Alice Liddell"),
        ("user-bob", "bob@example.com", "Bob Builder"),
        ("user-carol", "carol@example.com", "Carol Danvers"),
    ]:
        cassandra.execute(
            f"INSERT INTO {mapping.cassandra_table} (id, email, name) VALUES (%s, %s, %s)",
            (user_id, email, name),
        )
        target.execute(
            f"INSERT INTO public.{mapping.postgres_table} (id, email, name) VALUES (%s, %s, %s)",
            (user_id, email, name),
        )
    return mapping


@pytest.fixture
def events(
    cassandra: Session, target: psycopg.Connection, table_pair: Callable[..., TableMapping]
) -> TableMapping:
    """A table keyed by ((tenant, day), seq): three events of acme on one day, one of globex."""
    mapping = table_pair(EVENTS_CASSANDRA, EVENTS_POSTGRES)
    rows = [
        ("acme", dt.date(2025, 11, 25), 1, "login from 10.0.0.1"),
        ("acme", dt.date(2025, 11, 25), 2, "email changed to x@acme.test"),
        ("acme", dt.date(2025, 11, 25), 3, "logout"),
        ("globex", dt.date(2025, 11, 25), 2, "login"),
    ]
    for row in rows:
        cassandra.execute(
            f"INSERT INTO {mapping.cassandra_table} (tenant, day, seq, payload) "
            "VALUES (%s, %s, %s, %s)",
            row,
        )
        target.execute(
            f"INSERT INTO public.{mapping.postgres_table} (tenant, day, seq, payload) "
            "VALUES (%s, %s, %s, %s)",
            row,
        )
    return mapping
