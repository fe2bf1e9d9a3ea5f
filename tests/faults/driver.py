"""The fault tests' hands inside the code under test: a Django process on the PRIVATE stores.

Run as ``python -m tests.faults.driver`` with the private stack's environment (see
``tests/faults/conftest.py``).  It reads one JSON command per line on stdin and answers one
JSON line on stdout, so one process serves a whole test run (no Django start-up per call):

    {"cmd": "enqueue", "table": "t1", "strategy": "CHECKSUM", "queue": "q"} -> {"job_id": ...}
    {"cmd": "job", "job_id": "..."} -> {"status", "phase", "error_message", ...}

Each command first makes sure the app-database connection is usable (the tests restart
PostgreSQL under it), and any error is answered as {"error": "..."} rather than raised.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import django


def handle(command: dict[str, Any]) -> dict[str, Any]:
    from reconciliation.connections import ensure_app_database
    from reconciliation.jobs import create_job
    from reconciliation.models import Mismatch, ReconciliationJob, TableMapping
    from reconciliation.tasks import run_reconciliation_job

    ensure_app_database()
    if command["cmd"] == "migrate":
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        return {"ok": True}
    if command["cmd"] == "enqueue":
        from cdcrecon.conf import settings

        mapping, _ = TableMapping.objects.get_or_create(
            name=command["table"],
            defaults={
                "cassandra_keyspace": settings.cassandra.keyspace,
                "cassandra_table": command["table"],
                "postgres_schema": "public",
                "postgres_table": command["table"],
            },
        )
        job = create_job(mapping, command["strategy"])
        run_reconciliation_job.apply_async(args=[str(job.pk)], queue=command["queue"])
        return {"job_id": str(job.pk)}
    if command["cmd"] == "job":
        job = ReconciliationJob.objects.get(pk=command["job_id"])
        return {
            "status": job.status,
            "phase": job.phase,
            "error_message": job.error_message,
            "mismatch_count": job.mismatch_count,
            "mismatch_rows": Mismatch.objects.filter(job=job).count(),
            "transient_count": job.transient_count,
        }
    raise ValueError(f"unknown command {command['cmd']!r}")


def main() -> None:
    django.setup()
    for line in sys.stdin:
        try:
            answer = handle(json.loads(line))
        except Exception as exc:  # answered, never raised: the tests poll through outages
            answer = {"error": f"{type(exc).__name__}: {exc}"}
            try:
                from django.db import connection

                connection.close()
            except Exception:
                pass
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
