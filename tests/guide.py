"""The reconciliation guide's JSON shapes, written down once for the tests.

Deliberately a copy of the guide, not an import of ``reconciliation.presenters``: the tests
check the implementation against the contract, so the contract must not come from the code.
"""

from __future__ import annotations

# A job in GET /reconciliation/jobs (and the job part of GET /reconciliation/jobs/{id}).
JOB_FIELDS = frozenset(
    {
        "job_id",
        "table_name",
        "job_type",
        "validation_strategy",
        "started_at",
        "completed_at",
        "status",
        "cassandra_row_count",
        "postgres_row_count",
        "mismatch_count",
        "drift_percentage",
        "alert_fired",
    }
)

# Issue 11 (the ledger) adds these to a job: what it examined, schema warnings, whether it
# was inconclusive (examined nothing) and its TIMESTAMP_RANGE window.
JOB_LEDGER_FIELDS = frozenset({"keys_examined", "schema_warnings", "inconclusive", "window"})

# ... and these to a mismatch (list and job details): its history across runs.
MISMATCH_LEDGER_FIELDS = frozenset(
    {"first_seen_at", "last_seen_at", "times_seen", "last_job_id", "reappeared_at"}
)

# A mismatch inside GET /reconciliation/jobs/{id}.
JOB_DETAIL_MISMATCH_FIELDS = frozenset(
    {
        "mismatch_id",
        "primary_key_value",
        "mismatch_type",
        "cassandra_checksum",
        "postgres_checksum",
        "detected_at",
        "resolution_status",
    }
)
