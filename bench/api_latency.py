"""Latency of GET /reconciliation/mismatches over a million mismatch rows.

    .venv/bin/python bench/api_latency.py [--rows 1000000] [--requests 50] [--reload]

Creates (once) the database ``cdcrecon_bench_api`` (plus ``CDCRECON_TEST_SUFFIX``, so that
parallel checkouts do not share it) on the app's PostgreSQL server, migrates
it, fills it with ``--rows`` mismatches spread over 1,000 jobs and three tables with one
``INSERT ... SELECT generate_series`` (about a minute for a million), then times requests
through Django's test client (the full middleware, authentication, filter, pagination and
JSON rendering path; no network) and prints p50/p95/max per query.  Not a test: nothing
asserts, it reports.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

# A suffix (CDCRECON_TEST_SUFFIX, as the tests use) keeps parallel checkouts apart.
BENCH_DB = "cdcrecon_bench_api" + os.environ.get("CDCRECON_TEST_SUFFIX", "")
ROOT = Path(__file__).resolve().parents[1]


def database_url() -> str:
    base = os.environ.get("DATABASE_URL", "postgres://cdcrecon@127.0.0.1:5432/cdcrecon")
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/{BENCH_DB}"))


def ensure_database(url: str) -> None:
    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (BENCH_DB,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))
            print(f"created database {BENCH_DB}")


# Each model's rows as SQL expressions over ``j`` (jobs) or ``i`` (mismatches) and the job
# joined to a mismatch.  Every other column gets its model default (``insert_select``), so a
# column added later with a default never breaks the bench.
JOB_COLUMNS = {
    "job_id": "gen_random_uuid()",
    "table_name": "(ARRAY['users','orders','sessions'])[1 + j % 3]",
    "job_type": "'HOURLY_SCHEDULED'",
    "validation_strategy": "'CHECKSUM'",
    "status": "'COMPLETED'",
    "started_at": "now() - j * interval '1 hour'",
    "completed_at": "now() - j * interval '1 hour' + interval '45 seconds'",
    "heartbeat_at": "now() - j * interval '1 hour'",
    "progress": "1.0",
    "cassandra_row_count": "1000000",
    "postgres_row_count": "999000",
    "keys_examined": "1000000",
    "mismatch_count": "1000",
    "drift_percentage": "0.1",
    "phase": "'DONE'",
}
JOBS_FROM = "FROM generate_series(1, {jobs}) AS j"

MISMATCH_COLUMNS = {
    "mismatch_id": "gen_random_uuid()",
    "job_id": "jobs.job_id",
    "table_name": "jobs.table_name",
    "primary_key_value": "'user-' || i",
    "mismatch_type": "(ARRAY['MISSING_IN_POSTGRES','MISSING_IN_CASSANDRA','DATA_MISMATCH'])"
    "[1 + i % 3]",
    "cassandra_checksum": "md5(i::text) || md5((i + 1)::text)",
    "postgres_checksum": "md5((i + 2)::text) || md5((i + 3)::text)",
    "cassandra_data": "jsonb_build_object('id', 'user-' || i, 'email', 'old' || i || "
    "'@example.com', 'name', 'User ' || i, 'balance', i % 1000)",
    "postgres_data": "jsonb_build_object('id', 'user-' || i, 'email', 'new' || i || "
    "'@example.com', 'name', 'User ' || i, 'balance', i % 1000)",
    "detected_at": "now() - (i * interval '3 seconds')",
    "resolution_status": "(ARRAY['PENDING','PENDING','PENDING','MANUAL_RESOLVED','IGNORED'])"
    "[1 + i % 5]",
}
MISMATCHES_FROM = (
    "FROM generate_series(1, {rows}) AS i "
    "JOIN (SELECT job_id, table_name, row_number() OVER () - 1 AS n "
    "FROM reconciliation_reconciliationjob) AS jobs ON jobs.n = i % {jobs}"
)


def insert_select(model: Any, expressions: dict[str, str], source: str) -> tuple[str, list[Any]]:
    """``INSERT INTO <model's table> (...) SELECT ... <source>``: the given expressions, and
    for every other column that needs a value (NOT NULL, no database default) the model
    field's own default as a parameter."""
    from django.db import models
    from psycopg.types.json import Jsonb

    columns: list[str] = []
    values: list[str] = []
    params: list[Any] = []
    for field in model._meta.concrete_fields:
        if field.attname in expressions or field.name in expressions:
            columns.append(field.column)
            expression = expressions.get(field.attname) or expressions[field.name]
            values.append(expression.replace("%", "%%"))  # a literal % beside the parameters
        elif not field.null and not field.has_db_default():
            if not field.has_default():
                raise ValueError(f"{model.__name__}.{field.name} needs a value in the bench data")
            default = field.get_default()
            columns.append(field.column)
            values.append("%s")
            params.append(Jsonb(default) if isinstance(field, models.JSONField) else default)
    statement = (
        f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "
        f"SELECT {', '.join(values)} {source.replace('%', '%%')}"
    )
    return statement, params


def fill_statements(rows: int, jobs: int = 1000) -> list[tuple[str, list[Any]]]:
    """The statements that load ``jobs`` jobs and ``rows`` mismatches spread over them."""
    from reconciliation.models import Mismatch, ReconciliationJob

    return [
        insert_select(ReconciliationJob, JOB_COLUMNS, JOBS_FROM.format(jobs=int(jobs))),
        insert_select(
            Mismatch, MISMATCH_COLUMNS, MISMATCHES_FROM.format(rows=int(rows), jobs=int(jobs))
        ),
    ]


def fill(url: str, rows: int, reload: bool, jobs: int = 1000) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        have = conn.execute("SELECT count(*) FROM reconciliation_mismatch").fetchone()[0]
        if have == rows and not reload:
            print(f"{have:,} mismatch rows already there")
            return
        print(f"loading {rows:,} mismatch rows ...", flush=True)
        started = time.perf_counter()
        conn.execute("TRUNCATE reconciliation_mismatch, reconciliation_reconciliationjob CASCADE")
        with conn.transaction():
            for statement, params in fill_statements(rows, jobs):
                conn.execute(statement, params)
        conn.execute("VACUUM ANALYZE reconciliation_mismatch")
        conn.execute("VACUUM ANALYZE reconciliation_reconciliationjob")
        print(f"loaded in {time.perf_counter() - started:.1f} s")


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--reload", action="store_true", help="refill even if already loaded")
    args = parser.parse_args()

    url = database_url()
    ensure_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdcrecon.settings")
    os.environ.setdefault("API_THROTTLE_USER", "1000000/minute")  # time the API, not the limit
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from cdcrecon.api.tokens import issue_token

    call_command("migrate", verbosity=0)
    fill(url, args.rows, args.reload)
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_superuser": True, "is_staff": True}
    )
    client = Client(HTTP_AUTHORIZATION=f"Bearer {issue_token(user)[1]}")
    import cdcrecon.wsgi  # noqa: F401  (the server's start-up, gc.freeze included)

    queries = [
        "/reconciliation/mismatches?limit=1000",
        "/reconciliation/mismatches?limit=1000&offset=50000",
        "/reconciliation/mismatches?limit=1000&table=users",
        "/reconciliation/mismatches?limit=1000&table=users&mismatch_type=DATA_MISMATCH"
        "&resolution_status=PENDING",
        "/reconciliation/mismatches?limit=10000",
        "/reconciliation/jobs?limit=1000",
    ]
    print(f"\n{args.requests} requests each, {args.rows:,} mismatch rows\n")
    print(f"{'query':<92} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'KiB':>6}")
    for path in queries:
        client.get(path)  # warm caches and connections
        samples: list[float] = []
        size = 0
        for _ in range(args.requests):
            started = time.perf_counter()
            response = client.get(path)
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.content[:300]
            size = len(response.content)
        print(
            f"{path:<92} {statistics.median(samples):8.1f} {percentile(samples, 95):8.1f} "
            f"{max(samples):8.1f} {size / 1024:6.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
