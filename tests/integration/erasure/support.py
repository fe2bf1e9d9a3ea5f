"""Helpers of the GDPR erasure tests: clients, URLs, what each store holds, a mismatch."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import psycopg
from cassandra.cluster import Session
from django.apps import apps
from django.contrib.auth.models import Permission, User
from django.core import serializers
from rest_framework.test import APIClient

from cdcrecon.api.tokens import issue_token
from reconciliation.choices import JobStatus, MismatchType, ValidationStrategy
from reconciliation.models import Mismatch, ReconciliationJob, TableMapping

USERS_CASSANDRA = "id text PRIMARY KEY, email text, name text"
USERS_POSTGRES = "id text PRIMARY KEY, email text, name text, _cdc_updated_at timestamptz"
EVENTS_CASSANDRA = "tenant text, day date, seq int, payload text, PRIMARY KEY ((tenant, day), seq)"
EVENTS_POSTGRES = "tenant text, day date, seq int, payload text, PRIMARY KEY (tenant, day, seq)"


def client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(user)[1]}")
    return client


def user_with(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, password="not-used-here")
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return User.objects.get(pk=user.pk)  # fresh: no cached permissions


def url(mapping: TableMapping, key: str, keyspace: str | None = None) -> str:
    keyspace = keyspace or mapping.cassandra_keyspace
    return f"/records/{keyspace}/{mapping.cassandra_table}/{quote(key, safe='')}"


def composite(*parts: str) -> str:
    return json.dumps(list(parts))


def cassandra_ids(cassandra: Session, mapping: TableMapping) -> set[str]:
    return {row["id"] for row in cassandra.execute(f"SELECT id FROM {mapping.cassandra_table}")}


def postgres_ids(target: psycopg.Connection, mapping: TableMapping) -> set[str]:
    return {row[0] for row in target.execute(f"SELECT id FROM public.{mapping.postgres_table}")}


def event_keys(cassandra: Session, target: psycopg.Connection, mapping: TableMapping) -> tuple:
    in_cassandra = {
        (r["tenant"], str(r["day"]), r["seq"])
        for r in cassandra.execute(f"SELECT tenant, day, seq FROM {mapping.cassandra_table}")
    }
    in_postgres = {
        (r[0], str(r[1]), r[2])
        for r in target.execute(f"SELECT tenant, day, seq FROM public.{mapping.postgres_table}")
    }
    return in_cassandra, in_postgres


def mismatch(mapping: TableMapping, key: str, **fields: Any) -> Mismatch:
    job = ReconciliationJob.objects.create(
        table_name=mapping.name,
        validation_strategy=ValidationStrategy.CHECKSUM,
        status=JobStatus.COMPLETED,
    )
    values: dict[str, Any] = {
        "mismatch_type": MismatchType.DATA_MISMATCH,
        "cassandra_checksum": "a" * 64,
        "postgres_checksum": "b" * 64,
        "cassandra_data": {"id": key, "email": f"{key}@example.com"},
        "postgres_data": {"id": key, "email": f"{key}.old@example.com"},
        **fields,
    }
    return Mismatch.objects.create(
        job=job, table_name=mapping.name, primary_key_value=key, **values
    )


def app_tables_dump() -> str:
    """Every row of every table of our own apps, as JSON text."""
    models = [*apps.get_app_config("reconciliation").get_models()]
    models += [*apps.get_app_config("gdpr").get_models()]
    return "".join(serializers.serialize("json", model.objects.all()) for model in models)
