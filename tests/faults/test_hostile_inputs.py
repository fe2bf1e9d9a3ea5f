"""Hostile inputs on every endpoint (injection strings, huge bodies, NUL bytes, non-UTF-8,
out-of-range keys): each is answered with JSON, 4xx when refused, never a 500 and never an
HTML page, and nothing is dropped or written in either store (issue 12, fault 5)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from gdpr.models import AuditLogEntry
from reconciliation.models import Mismatch, ReconciliationJob
from tests.factories import JobFactory, MismatchFactory

pytestmark = [pytest.mark.faults, pytest.mark.django_db]

HOSTILE = [
    "' OR '1'='1",
    "'; DROP TABLE reconciliation_reconciliationjob; --",
    "users; DROP TABLE users",
    '" OR 1=1 --',
    "1; SELECT pg_sleep(10)",
    "${jndi:ldap://example.invalid/a}",
    "../../../../etc/passwd",
    "<script>alert(1)</script>",
    "nul\x00byte",
    "\u202eevil",
    "\U0001f600" * 50,
    "9" * 400,
    "-1",
    "1e309",
    "NaN",
    "[]",
    "{}",
    "",
]
QUERY_ENDPOINTS = ["/reconciliation/jobs", "/reconciliation/mismatches", "/records/audit"]
QUERY_PARAMS = [
    "table",
    "status",
    "from_date",
    "to_date",
    "limit",
    "offset",
    "mismatch_type",
    "resolution_status",
    "job_id",
]
HUGE = 3 * 1024 * 1024


def assert_json_answer(response, *, refused: bool = False) -> dict:
    assert response.status_code < 500, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json"), response.content[:300]
    body = response.json()
    if refused or response.status_code >= 400:
        assert 400 <= response.status_code < 500, response.status_code
        assert {"error", "detail", "fields"} <= set(body), body
    return body


@pytest.fixture
def world(superuser_api, table_pair, cassandra, target):
    """Rows in both stores (a text-keyed and a bigint-keyed table), a job and a mismatch:
    what a hostile request must not drop or change."""
    users = table_pair("id text PRIMARY KEY, email text", "id text PRIMARY KEY, email text")
    numbers = table_pair("id bigint PRIMARY KEY, n int", "id bigint PRIMARY KEY, n int")
    for i in range(5):
        cassandra.execute(f"INSERT INTO {users.cassandra_table} (id, email) VALUES ('u{i}', 'e')")
        target.execute(f"INSERT INTO public.{users.postgres_table} VALUES ('u{i}', 'e')")
        cassandra.execute(f"INSERT INTO {numbers.cassandra_table} (id, n) VALUES ({i}, 1)")
        target.execute(f"INSERT INTO public.{numbers.postgres_table} VALUES ({i}, 1)")
    job = JobFactory(table_name=users.name)
    mismatch = MismatchFactory(job=job, table_name=users.name)
    superuser_api.raise_request_exception = False

    def census() -> dict[str, int]:
        return {
            "cassandra_users": cassandra.execute(
                f"SELECT count(*) FROM {users.cassandra_table}"
            ).one()["count"],
            "cassandra_numbers": cassandra.execute(
                f"SELECT count(*) FROM {numbers.cassandra_table}"
            ).one()["count"],
            "postgres_users": target.execute(
                f"SELECT count(*) FROM public.{users.postgres_table}"
            ).fetchone()[0],
            "postgres_numbers": target.execute(
                f"SELECT count(*) FROM public.{numbers.postgres_table}"
            ).fetchone()[0],
            "jobs": ReconciliationJob.objects.count(),
            "mismatches": Mismatch.objects.count(),
        }

    before = census()
    audit_before = AuditLogEntry.objects.count()
    world = {"users": users, "numbers": numbers, "job": job, "mismatch": mismatch, "audited": 0}
    yield world
    assert census() == before, "a hostile request dropped or wrote something"
    assert AuditLogEntry.objects.count() == audit_before + world["audited"]


def test_hostile_query_parameters_on_every_list_endpoint(superuser_api, world) -> None:
    for path in QUERY_ENDPOINTS:
        for name in QUERY_PARAMS:
            for value in HOSTILE:
                assert_json_answer(superuser_api.get(path, {name: value}))
        raw = superuser_api.get(path + "?table=%FF%FE&limit=%00")  # not UTF-8, NUL
        assert_json_answer(raw)


def test_hostile_path_segments(superuser_api, world) -> None:
    mismatch = world["mismatch"]
    for value in HOSTILE + ["%00", "%FF", "..%2F..%2F"]:
        segment = quote(value, safe="%")
        assert_json_answer(superuser_api.get(f"/reconciliation/jobs/{segment}"))
        assert_json_answer(superuser_api.post(f"/reconciliation/mismatches/{segment}/resolve"))
        assert_json_answer(superuser_api.post(f"/reconciliation/mismatches/{segment}/repair"))
    assert_json_answer(
        superuser_api.post(
            f"/reconciliation/mismatches/{mismatch.mismatch_id}/resolve",
            {"resolution_status": "MANUAL_RESOLVED", "resolution_notes": "nul\x00here"},
            format="json",
        ),
        refused=True,
    )


def test_hostile_trigger_bodies(superuser_api, world) -> None:
    for value in HOSTILE:
        for body in (
            {"tables": [value], "validation_strategy": "ROW_COUNT"},
            {"tables": [world["users"].name], "validation_strategy": value},
            {"tables": value, "validation_strategy": "ROW_COUNT"},
            {
                "tables": [world["users"].name],
                "validation_strategy": "SAMPLE",
                "sample_size": value,
            },
            {
                "tables": [world["users"].name],
                "validation_strategy": "TIMESTAMP_RANGE",
                "from": value,
            },
        ):
            assert_json_answer(
                superuser_api.post("/reconciliation/trigger", body, format="json"), refused=True
            )


@pytest.mark.parametrize(
    "path",
    [
        "/reconciliation/trigger",
        "/reconciliation/mismatches/{mismatch}/resolve",
        "/records/{keyspace}/{table}/u1",
    ],
)
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"tables": ["' + b"x" * HUGE + b'"]}', id="3-MB"),
        pytest.param(b'{"tables": ["\xff\xfe"], "reason": "\xc3\x28"}', id="not-UTF-8"),
        pytest.param(b'{"tables": ["us\\u0000ers"], "reason": "a\\u0000b"}', id="NUL"),
        pytest.param(b"\x00\x00\x00", id="binary"),
        pytest.param(b'{"tables": ["\\ud800"], "reason": "\\udfff"}', id="lone-surrogate"),
        pytest.param(b'{"a": ' * 2000 + b"1" + b"}" * 2000, id="deeply-nested"),
    ],
)
def test_hostile_bodies_on_every_writing_endpoint(superuser_api, world, path, body) -> None:
    users = world["users"]
    url = path.format(
        mismatch=world["mismatch"].mismatch_id,
        keyspace=users.cassandra_keyspace,
        table=users.cassandra_table,
    )
    method = "DELETE" if url.startswith("/records/") else "POST"

    response = superuser_api.generic(method, url, body, content_type="application/json")

    answer = assert_json_answer(response, refused=True)
    if len(body) >= HUGE:
        assert response.status_code == 413, answer


def test_hostile_and_out_of_range_keys_are_refused_before_anything_is_written(
    superuser_api, world
) -> None:
    numbers = world["numbers"]
    base = f"/records/{numbers.cassandra_keyspace}/{numbers.cassandra_table}/"
    for key in HOSTILE + ["99999999999999999999999", "-9223372036854775809", "1.5", "0x10"]:
        if key in ("", "-1"):  # no key at all is another URL; -1 is a perfectly good bigint
            continue
        response = superuser_api.delete(base + quote(key, safe="") + "?reason=ticket")
        body = assert_json_answer(response, refused=True)
        assert response.status_code in (400, 404), body
    for keyspace, table in [("x'; DROP", "t"), ("ks", "t\x00"), ("..", "..")]:
        response = superuser_api.delete(
            f"/records/{quote(keyspace, safe='')}/{quote(table, safe='')}/1?reason=r"
        )
        assert_json_answer(response, refused=True)


def test_a_text_key_made_of_sql_is_only_ever_a_key(superuser_api, world, cassandra, target):
    """An injection string is a perfectly valid *text* key: it is looked up as such (and
    found nowhere), so the other rows stay where they are."""
    users = world["users"]
    for key in ("' OR '1'='1", "u1' OR 'x'='x", '["u1"]'):
        response = superuser_api.delete(
            f"/records/{users.cassandra_keyspace}/{users.cassandra_table}/"
            f"{quote(key, safe='')}?reason=ticket"
        )
        body = assert_json_answer(response)
        assert response.status_code == 200, body
        assert body["cassandra"]["status"] == "NOT_FOUND"
        assert body["postgres"]["status"] == "NOT_FOUND"
    world["audited"] = 3  # a request for a key that is not there is still audited
