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

# Our additions to a job's JSON beyond the guide: why it failed and where it is (issue 12),
# who started it (issue 14), how far it got, what it examined, schema warnings, whether it was
# inconclusive and its TIMESTAMP_RANGE window (issue 11), values neither side could read
# (issue 10), its token-range segments: planned and done (issue 13).
JOB_EXTRA_FIELDS = frozenset(
    {
        "error_message",
        "phase",
        "requested_by",
        "progress",
        "segments_total",
        "segments_done",
        "unreadable_value_count",
        "keys_examined",
        "schema_warnings",
        "inconclusive",
        "window",
        # issue 18: how drift was told from differences in flight
        "transient_count",  # issue 28: differences equal when read again
        "in_flight_count",
        "expired_count",
        "recheck_rule",
        "lag_budget_seconds",
        # the source read-rate cap: the rate at which the job read Cassandra
        "source_rows_per_second",
        # issue 19: what the table's repair policy did after the job
        "repair_summary",
        # issue 28 item 5: where that run is while it works (running, interrupted, done)
        "repair_run",
    }
)

# Issue 11 adds these to a mismatch (list and job details): its history across runs.
MISMATCH_LEDGER_FIELDS = frozenset(
    {"first_seen_at", "last_seen_at", "times_seen", "last_job_id", "reappeared_at"}
    # issue 18: the source row's write time and TTL, and an in-flight difference's re-check
    | {"source_write_time", "source_ttl_seconds", "recheck_after"}
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
