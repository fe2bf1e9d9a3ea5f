"""A key from a URL is parsed against its columns' CQL types, with their ranges, before an
audit entry is written or any store is touched: a bad key is a 400 naming the column and
leaves no trace (issue 12)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from urllib.parse import quote

import pytest
from rest_framework.test import APIClient

from gdpr.models import AuditLogEntry
from reconciliation.models import Mismatch, TableMapping
from tests.factories import JobFactory
from tests.integration.conftest import grant

pytestmark = pytest.mark.django_db

# One table whose key has a column of every keyable CQL type (a partition key column and
# clustering columns), with its copy on the target.
KEY_COLUMNS = [
    ("k_tinyint", "tinyint", "smallint", "-128"),
    ("k_smallint", "smallint", "smallint", "32767"),
    ("k_int", "int", "integer", "-2147483648"),
    ("k_bigint", "bigint", "bigint", "9223372036854775807"),
    ("k_varint", "varint", "numeric", "123456789012345678901234567890"),
    ("k_decimal", "decimal", "numeric", "12.5"),
    ("k_uuid", "uuid", "uuid", "6f1c2e0a-8d2b-4b8e-9a51-0c6d3f1e2a7b"),
    ("k_timeuuid", "timeuuid", "uuid", "d2177dd0-eaa2-11de-a572-001b779c76e3"),
    ("k_timestamp", "timestamp", "timestamptz", "2025-11-25T10:00:00.000Z"),
    ("k_date", "date", "date", "2025-11-25"),
    ("k_time", "time", "time", "10:00:00"),
    ("k_inet", "inet", "inet", "10.0.0.1"),
    ("k_blob", "blob", "bytea", "cafe"),
    ("k_boolean", "boolean", "boolean", "true"),
    ("k_text", "text", "text", "hello"),
    ("k_ascii", "ascii", "text", "plain"),
]
BAD_VALUES = {
    "k_tinyint": ["128", "-129", "1.0"],
    "k_smallint": ["32768", "-32769"],
    "k_int": ["2147483648", "-2147483649", "1_000"],
    "k_bigint": ["99999999999999999999999", "9223372036854775808", "-9223372036854775809"],
    "k_varint": ["9" * 2000, "12abc"],
    "k_decimal": ["NaN", "Infinity", "1.2.3"],
    "k_uuid": [
        "not-a-uuid",
        "6f1c2e0a8d2b4b8e9a510c6d3f1e2a7b",
        "{6f1c2e0a-8d2b-4b8e-9a51-0c6d3f1e2a7b}",
    ],
    "k_timeuuid": ["6f1c2e0a-8d2b-4b8e-9a51-0c6d3f1e2a7b"],
    "k_timestamp": ["2025-13-01T00:00:00Z", "99999999999999999999", "soon"],
    "k_date": ["2025-02-30", "20251125"],
    "k_time": ["25:00:00", "10:00"],
    "k_inet": ["300.1.1.1", "localhost"],
    "k_blob": ["xyz", "abc"],
    "k_boolean": ["yes", "TRUE"],
    "k_ascii": ["naïve"],
    "k_text": ["nul\x00inside"],
}


@pytest.fixture
def wide_key_table(table_pair, cassandra, target) -> TableMapping:
    names = [name for name, *_ in KEY_COLUMNS]
    cassandra_columns = ", ".join(f"{name} {cql}" for name, cql, _, _ in KEY_COLUMNS)
    postgres_columns = ", ".join(f"{name} {pg}" for name, _, pg, _ in KEY_COLUMNS)
    mapping = table_pair(
        f"{cassandra_columns}, payload text, PRIMARY KEY (({names[0]}), {', '.join(names[1:])})",
        f"{postgres_columns}, payload text, PRIMARY KEY ({', '.join(names)})",
    )
    return mapping


def good_parts() -> list[str]:
    return [value for *_, value in KEY_COLUMNS]


def erase(client: APIClient, mapping: TableMapping, parts: list[str]):
    key = quote(json.dumps(parts), safe="")
    return client.delete(
        f"/records/{mapping.cassandra_keyspace}/{mapping.cassandra_table}/{key}?reason=ticket-1"
    )


@pytest.fixture
def dpo(api_client) -> APIClient:
    client = api_client()
    grant(client.user, "gdpr.erase_record")
    return client


@pytest.mark.parametrize(
    ("column", "bad"), [(column, bad) for column, values in BAD_VALUES.items() for bad in values]
)
def test_a_bad_key_value_is_a_400_naming_its_column_and_leaves_no_trace(
    wide_key_table, dpo, column, bad
) -> None:
    parts = good_parts()
    parts[[name for name, *_ in KEY_COLUMNS].index(column)] = bad
    JobFactory(table_name=wide_key_table.name)
    audit_rows_before = AuditLogEntry.objects.count()

    response = erase(dpo, wide_key_table, parts)

    assert response.status_code == 400, response.content[:300]
    body = response.json()
    assert body["error"] == "invalid_key"
    assert column in body["fields"], body
    assert column in body["detail"]
    assert AuditLogEntry.objects.count() == audit_rows_before
    assert not Mismatch.objects.filter(table_name=wide_key_table.name).exists()


def test_a_good_key_of_every_type_is_erased_from_both_stores(
    wide_key_table, dpo, cassandra, target
) -> None:
    names = [name for name, *_ in KEY_COLUMNS]
    values = [
        -128,
        32767,
        -2147483648,
        9223372036854775807,
        123456789012345678901234567890,
        __import__("decimal").Decimal("12.5"),
        uuid.UUID(KEY_COLUMNS[6][3]),
        uuid.UUID(KEY_COLUMNS[7][3]),
        dt.datetime(2025, 11, 25, 10, 0, tzinfo=dt.UTC),
        dt.date(2025, 11, 25),
        dt.time(10, 0),
        "10.0.0.1",
        b"\xca\xfe",
        True,
        "hello",
        "plain",
    ]
    marks = ", ".join("%s" for _ in names)
    cassandra.execute(
        f"INSERT INTO {wide_key_table.cassandra_table} ({', '.join(names)}, payload) "
        f"VALUES ({marks}, 'x')",
        values,
    )
    target.execute(
        f"INSERT INTO public.{wide_key_table.postgres_table} ({', '.join(names)}, payload) "
        f"VALUES ({marks}, 'x')",
        values,
    )

    response = erase(dpo, wide_key_table, good_parts())

    assert response.status_code == 200, response.content[:500]
    assert response.json()["cassandra"]["status"] == "SUCCESS"
    assert response.json()["postgres"]["status"] == "SUCCESS"
    assert (
        cassandra.execute(f"SELECT count(*) FROM {wide_key_table.cassandra_table}").one()["count"]
        == 0
    )


def test_a_key_with_the_wrong_number_of_parts_is_a_400_without_a_trace(wide_key_table, dpo):
    before = AuditLogEntry.objects.count()

    response = erase(dpo, wide_key_table, good_parts()[:-1])

    assert response.status_code == 400
    assert "primary_key" in response.json()["fields"]
    assert AuditLogEntry.objects.count() == before
