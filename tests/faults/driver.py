"""The fault tests' hands inside the code under test: a Django process on the PRIVATE stores.

Run as ``python -m tests.faults.driver`` with the private stack's environment (see
``tests/faults/conftest.py``).  It reads one JSON command per line on stdin and answers one
JSON line on stdout, so one process serves a whole test run (no Django start-up per call):

    {"cmd": "enqueue", "table": "t1", "strategy": "CHECKSUM", "queue": "q"} -> {"job_id": ...}
        (optional "mapping": {field: value} for the table mapping, e.g. its read-rate cap)
    {"cmd": "job", "job_id": "..."} -> {"status", "phase", "error_message", ...}
    {"cmd": "segments", "job_id": "..."} -> {"segments": [{"id", "kind", "status", ...}]}
    {"cmd": "findings", "job_id": "..."} -> {"findings": [[key, type], ...], "mismatch_rows"...}
    {"cmd": "api", "method": "POST", "path": "/reconciliation/..."} -> {"status_code", "body"}
    {"cmd": "repair_state", "job_id": "...", "table": "t1"} -> {"summary", "actions",
        "mismatches", "audit"}: where the table's repair policy has got to (``_repair_state``)

Each command first makes sure the app-database connection is usable (the tests restart
PostgreSQL under it), and any error is answered as {"error": "..."} rather than raised.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import django


def handle(command: dict[str, Any]) -> dict[str, Any]:
    from cdcrecon.celery import app
    from reconciliation.connections import ensure_app_database
    from reconciliation.jobs import create_job
    from reconciliation.models import Mismatch, ReconciliationJob, TableMapping

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
        if command.get("mapping"):
            TableMapping.objects.filter(pk=mapping.pk).update(**command["mapping"])
            mapping.refresh_from_db()
        job = create_job(mapping, command["strategy"])
        # The job's segments follow it to its queue (``ReconciliationJob.queue``).
        ReconciliationJob.objects.filter(pk=job.pk).update(queue=command["queue"])
        app.send_task("reconciliation.run_job", args=[str(job.pk)], queue=command["queue"])
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
            "cassandra_row_count": job.cassandra_row_count,
            "postgres_row_count": job.postgres_row_count,
            "keys_examined": job.keys_examined,
            "source_rows_per_second": job.source_rows_per_second,
            **_segment_counts(job),
        }
    if command["cmd"] == "segments":
        return {"segments": _segments(command["job_id"])}
    if command["cmd"] == "findings":
        return _findings(command["job_id"])
    if command["cmd"] == "api":
        return _api(command["method"], command["path"], command.get("body"))
    if command["cmd"] == "repair_state":
        return _repair_state(command["job_id"], command["table"])
    raise ValueError(f"unknown command {command['cmd']!r}")


def _segment_counts(job: Any) -> dict[str, Any]:
    try:
        from reconciliation.models.segments import segment_counts
    except ImportError:  # before the segments landed
        return {}
    return segment_counts(job)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _segments(job_id: str) -> list[dict[str, Any]]:
    from django.db.models import Count

    from reconciliation.models.segments import JobSegment

    return [
        {
            "id": segment.pk,
            "kind": segment.kind,
            "number": segment.number,
            "range_start": segment.range_start,
            "range_end": segment.range_end,
            "status": segment.status,
            "attempts": segment.attempts,
            "worker": segment.worker,
            "queued_at": _iso(segment.queued_at),
            "started_at": _iso(segment.started_at),
            "finished_at": _iso(segment.finished_at),
            "cassandra_rows": segment.cassandra_rows,
            "postgres_rows": segment.postgres_rows,
            "difference_count": segment.difference_count,
            "differences": segment.difference_rows,
        }
        for segment in JobSegment.objects.filter(job_id=job_id)
        .annotate(difference_rows=Count("differences"))
        .order_by("kind", "number")
    ]


def _findings(job_id: str) -> dict[str, Any]:
    """What the job found, per key: its ``JobFinding`` rows (the type it saw), and how many
    ledger rows it wrote."""
    from reconciliation.models import JobFinding, Mismatch

    findings = list(
        JobFinding.objects.filter(job_id=job_id).values_list(
            "mismatch__primary_key_value", "mismatch_type"
        )
    )
    return {
        "findings": sorted([key, kind] for key, kind in findings),
        "mismatch_rows": Mismatch.objects.filter(job_id=job_id).count(),
        "finding_rows": len(findings),
    }


def _repair_state(job_id: str, table: str) -> dict[str, Any]:
    """The repair policy's traces after job ``job_id`` on ``table``: the job's
    ``repair_summary``, its ``AutoRepairAction`` rows, the table's mismatches and the REPAIR
    audit entries of the table's keys, read in one snapshot (one REPEATABLE READ
    transaction, so a run still going cannot be seen half-way between two of them)."""
    from django.db import connection, transaction

    from gdpr.models import AuditAction, AuditLogEntry
    from reconciliation.models import AutoRepairAction, Mismatch, ReconciliationJob, TableMapping

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        mapping = TableMapping.objects.get(name=table)
        summary = ReconciliationJob.objects.values_list("repair_summary", flat=True).get(pk=job_id)
        actions = [
            {
                "mismatch_id": str(mismatch_id) if mismatch_id else None,
                "key": key,
                "result": result,
                "reason": reason,
                "audit_entry": audit_entry,
            }
            for mismatch_id, key, result, reason, audit_entry in AutoRepairAction.objects.filter(
                job_id=job_id
            )
            .order_by("pk")
            .values_list("mismatch_id", "primary_key_value", "result", "reason", "audit_entry_id")
        ]
        mismatches = [
            {
                "id": str(mismatch_id),
                "key": key,
                "type": kind,
                "status": status,
                "resolved_by": resolved_by,
            }
            for mismatch_id, key, kind, status, resolved_by in Mismatch.objects.filter(
                table_name=table
            ).values_list(
                "mismatch_id",
                "primary_key_value",
                "mismatch_type",
                "resolution_status",
                "resolved_by__username",
            )
        ]
        audit = [
            {
                "id": entry.pk,
                "key": entry.primary_key,
                "requester": entry.requester,
                "mismatch_id": entry.details.get("mismatch_id"),
                "action": entry.details.get("action"),
                "columns": entry.details.get("columns"),
                "policy": entry.details.get("policy"),
                "job_id": entry.details.get("job_id"),
                "postgres_status": entry.postgres_status,
                "completed": entry.completed_at is not None,
            }
            for entry in AuditLogEntry.objects.filter(
                action=AuditAction.REPAIR,
                keyspace=mapping.cassandra_keyspace,
                table=mapping.cassandra_table,
            ).order_by("pk")
        ]
    return {"summary": summary, "actions": actions, "mismatches": mismatches, "audit": audit}


def _api(method: str, path: str, body: Any = None) -> dict[str, Any]:
    """One request through the whole Django stack (URLs, token auth, permissions, throttle),
    as a superuser holding a real API token."""
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from cdcrecon.api.tokens import issue_token

    user, _ = get_user_model().objects.get_or_create(
        username="faults-driver", defaults={"is_superuser": True, "is_staff": True}
    )
    _, token = issue_token(user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.generic(
        method,
        path,
        json.dumps(body) if body is not None else "",
        content_type="application/json",
    )
    try:
        payload = response.json()
    except ValueError:
        payload = response.content.decode(errors="replace")
    return {"status_code": response.status_code, "body": payload}


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
