"""Throughput of the mismatch ledger: a run's findings applied in bulk, then healing.

    .venv/bin/python bench/ledger_upsert.py [--keys 100000]

Creates (once) the database ``cdcrecon_bench_ledger`` on the app's PostgreSQL server and
migrates it, then, as ``run_in_process`` does, applies ``--keys`` findings of one table through
``ledger.record.record_findings`` a thousand at a time: the first run inserts them, the
second finds them all again (refresh), the third finds half of them after a tenth were
ignored and a tenth resolved (keep / reopen), and ``heal`` closes what the third did not
find.  Prints wall time and rows per second for each step.  Not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

BENCH_DB = "cdcrecon_bench_ledger"
ROOT = Path(__file__).resolve().parents[1]
BATCH = 1000


def database_url() -> str:
    base = os.environ.get("DATABASE_URL", "postgres://cdcrecon@127.0.0.1:5432/cdcrecon")
    return urlunsplit(urlsplit(base)._replace(path=f"/{BENCH_DB}"))


def ensure_database(url: str) -> None:
    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (BENCH_DB,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=100_000)
    args = parser.parse_args()

    url = database_url()
    ensure_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdcrecon.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    from reconciliation.choices import JobStatus, ResolutionStatus, ValidationStrategy
    from reconciliation.ledger.record import heal, record_findings
    from reconciliation.models import Finding, JobFinding, Mismatch, ReconciliationJob

    call_command("migrate", verbosity=0)
    JobFinding.objects.all().delete()
    Mismatch.objects.all().delete()
    ReconciliationJob.objects.all().delete()

    def job() -> ReconciliationJob:
        return ReconciliationJob.objects.create(
            table_name="bench",
            validation_strategy=ValidationStrategy.CHECKSUM,
            status=JobStatus.COMPLETED,
        )

    def findings(keys: range, email: str) -> list[Finding]:
        return [
            Finding(
                primary_key_value=f"user-{i:07d}",
                mismatch_type="DATA_MISMATCH",
                cassandra_checksum=f"{i:064x}",
                postgres_checksum=f"{i + 1:064x}",
                cassandra_data={"id": f"user-{i:07d}", "email": f"u{i}@example.com", "n": i},
                postgres_data={"id": f"user-{i:07d}", "email": email, "n": i},
            )
            for i in keys
        ]

    def apply(run: ReconciliationJob, keys: range) -> float:
        started = time.perf_counter()
        for start in range(keys.start, keys.stop, BATCH):
            batch = findings(range(start, min(start + BATCH, keys.stop)), "stale@example.com")
            record_findings(run, batch)
        return time.perf_counter() - started

    n = args.keys
    rows: list[tuple[str, int, float]] = []
    rows.append(("run 1: insert every key", n, apply(job(), range(n))))
    rows.append(("run 2: find every key again (refresh)", n, apply(job(), range(n))))
    Mismatch.objects.filter(primary_key_value__lt=f"user-{n // 10:07d}").update(
        resolution_status=ResolutionStatus.IGNORED
    )
    third = job()
    rows.append(("run 3: find half again (10% ignored)", n // 2, apply(third, range(n // 2))))
    started = time.perf_counter()
    closed = heal(third)
    rows.append(
        ("heal: close what run 3 covered and did not find", closed, time.perf_counter() - started)
    )

    open_rows = Mismatch.objects.open().count()
    print(f"\n{n:,} keys, batches of {BATCH}; {open_rows:,} open differences at the end\n")
    print(f"{'step':<52} {'rows':>9} {'seconds':>9} {'rows/s':>9}")
    for name, count, seconds in rows:
        print(f"{name:<52} {count:>9,} {seconds:>9.2f} {count / seconds if seconds else 0:>9,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
