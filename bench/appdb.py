"""The bench's app database: migrated once per run, one TableMapping for the bench table, and
the job helpers shared by ``inprocess.py`` and ``workers.py``.

    .venv/bin/python bench/appdb.py --rows N     # migrate and register items_<N>

Jobs are created as the API creates them (``reconciliation.jobs.create_job``) and read back
from the job row, so the bench works whether a job runs as one task or as segments.  Before
each run the bench table's jobs and ledger rows are deleted, so every repeat starts from the
same empty ledger.  The functions import Django's side lazily: call
``stores.setup_django(table)`` first.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataset import table_name  # noqa: E402
from stores import KEYSPACE, app_url, ensure_database, setup_django  # noqa: E402


def prepare(rows: int) -> None:
    register(table_name(rows))


def register(name: str) -> None:
    """Migrate the app database and register bench table ``name`` (same name both sides)."""
    from django.core.management import call_command

    from reconciliation.models import TableMapping

    call_command("migrate", verbosity=0)
    TableMapping.objects.update_or_create(
        name=name,
        defaults={
            "cassandra_keyspace": KEYSPACE,
            "cassandra_table": name,
            "postgres_schema": "public",
            "postgres_table": name,
            "timestamp_column": "created_at",
            "excluded_columns": [],
            # The table was loaded moments ago: a 1 s budget keeps its planted differences
            # drift (not in flight) while the write-time rule still runs.
            "cdc_lag_budget_seconds": 1,
        },
    )


def reset(name: str) -> None:
    """Delete the table's jobs (their segments and findings go with them) and its ledger."""
    from reconciliation.choices import JobStatus
    from reconciliation.models import Mismatch, ReconciliationJob

    for job in ReconciliationJob.objects.filter(table_name=name, status=JobStatus.RUNNING):
        job.mark_failed("Left RUNNING by an earlier bench run.")
    Mismatch.objects.filter(table_name=name).delete()
    ReconciliationJob.objects.filter(table_name=name).delete()


def new_job(name: str, strategy: str, **parameters: Any) -> Any:
    from reconciliation.jobs import build_parameters, create_job
    from reconciliation.registry import get_mapping

    return create_job(
        get_mapping(name), strategy, parameters=build_parameters(strategy, **parameters)
    )


def enqueue(job: Any) -> None:
    try:  # reconciliation/jobs/ (segments)
        from reconciliation.jobs import enqueue_job
    except ImportError:  # one task per job (reconciliation/tasks.py)
        from reconciliation.tasks import enqueue_job
    enqueue_job(job)


def run_here(job: Any) -> None:
    """Run ``job`` in this process, the ``manage.py reconcile`` way."""
    try:
        from reconciliation.jobs import run_in_process
    except ImportError:
        from reconciliation.jobs import run_job as run_in_process
    run_in_process(job)


def summary(job: Any) -> dict[str, Any]:
    """What the job row says it did, and its findings by type."""
    from reconciliation.models import JobSegment

    job.refresh_from_db()
    found = Counter(job.findings.values_list("mismatch_type", flat=True))
    segments = Counter(
        (kind, worker)
        for kind, worker in JobSegment.objects.filter(job=job).values_list("kind", "worker")
    )
    return {
        "status": str(job.status),
        "error": job.error_message or None,
        "cassandra_rows": job.cassandra_row_count,
        "postgres_rows": job.postgres_row_count,
        "mismatches": job.mismatch_count,
        "source_rows_per_second": job.source_rows_per_second,
        "by_type": dict(found),
        "segments": {f"{kind}@{worker}": n for (kind, worker), n in sorted(segments.items())}
        or None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, required=True)
    args = parser.parse_args()
    ensure_database(app_url())
    setup_django(table_name(args.rows))
    prepare(args.rows)


if __name__ == "__main__":
    main()
