"""The guide's JSON shapes (docs/reconciliation-guide.md, "API Endpoints"), field for field:
the mismatch list, the trigger, resolve, re-check and the error bodies (the jobs' are
``api.job_serializers``).

Datetimes are ISO 8601 in UTC with a ``Z`` suffix (``2025-11-25T10:00:00Z``, microseconds
when there are any); ids are UUID strings.  The mismatch list is built from ``.values()``
rows by a hand-written ``to_representation`` because it serves up to 10,000 rows a page;
its declared fields still describe the shape for the OpenAPI schema.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from rest_framework import serializers

from cdcrecon.conf import MAX_SAMPLE_SIZE, TABLE_NAME_PATTERN
from reconciliation.choices import JobStatus, MismatchType, ResolutionStatus, ValidationStrategy
from reconciliation.models import CLOSED_STATUSES
from reconciliation.presenters import MISMATCH_LEDGER_FIELDS, iso

__all__ = ["iso"]


# --- mismatches ---------------------------------------------------------------------------

MISMATCH_FIELDS = (
    "mismatch_id",
    "job_id",
    "table_name",
    "primary_key_value",
    "mismatch_type",
    "cassandra_data",
    "postgres_data",
    "resolution_status",
    *MISMATCH_LEDGER_FIELDS,
)


class MismatchSerializer(serializers.Serializer[dict[str, Any]]):
    """One mismatch in the mismatch list, with both sides' captured rows."""

    mismatch_id = serializers.UUIDField(read_only=True)
    job_id = serializers.UUIDField(read_only=True)
    table_name = serializers.CharField(read_only=True)
    primary_key_value = serializers.CharField(
        read_only=True, help_text="The key's canonical text; a JSON array for a composite key."
    )
    mismatch_type = serializers.ChoiceField(choices=MismatchType.choices, read_only=True)
    cassandra_data = serializers.JSONField(
        read_only=True,
        allow_null=True,
        help_text="The row as read from Cassandra (null if absent).",
    )
    postgres_data = serializers.JSONField(
        read_only=True,
        allow_null=True,
        help_text="The row as read from PostgreSQL (null if absent).",
    )
    resolution_status = serializers.ChoiceField(choices=ResolutionStatus.choices, read_only=True)
    first_seen_at = serializers.DateTimeField(read_only=True)
    last_seen_at = serializers.DateTimeField(
        read_only=True, help_text="When a run (or a re-check) last captured the rows."
    )
    times_seen = serializers.IntegerField(
        read_only=True, help_text="How many runs (and re-checks) found this difference."
    )
    last_job_id = serializers.UUIDField(
        read_only=True, allow_null=True, help_text="The latest job that found it."
    )
    reappeared_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="Set when a resolved difference was found again and reopened.",
    )
    source_write_time = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="When the source row was last written (the latest WRITETIME of its regular "
        "columns), as last read; null when it is not in Cassandra or has no write time.",
    )
    source_ttl_seconds = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="The source row's remaining TTL when last read; null: it does not expire.",
    )
    recheck_after = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="IN_FLIGHT: when it is read again (write time + CDC lag budget + margin).",
    )

    def to_representation(self, row: Any) -> dict[str, Any]:
        # Fast path for up to 10,000 rows a page: no per-field serializer machinery.
        if not isinstance(row, dict):
            row = {name: getattr(row, name) for name in MISMATCH_FIELDS}
        return {
            "mismatch_id": str(row["mismatch_id"]),
            "job_id": str(row["job_id"]),
            "table_name": row["table_name"],
            "primary_key_value": row["primary_key_value"],
            "mismatch_type": row["mismatch_type"],
            # The list reads the rows as JSON text (orjson fragments, never decoded).
            "cassandra_data": row.get("cassandra_json", row.get("cassandra_data")),
            "postgres_data": row.get("postgres_json", row.get("postgres_data")),
            "resolution_status": row["resolution_status"],
            "first_seen_at": iso(row["first_seen_at"]),
            "last_seen_at": iso(row["last_seen_at"]),
            "times_seen": row["times_seen"],
            "last_job_id": str(row["last_job_id"]) if row["last_job_id"] else None,
            "reappeared_at": iso(row["reappeared_at"]),
            "source_write_time": iso(row["source_write_time"]),
            "source_ttl_seconds": row["source_ttl_seconds"],
            "recheck_after": iso(row["recheck_after"]),
        }


# --- trigger ------------------------------------------------------------------------------


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date-time that must carry a UTC offset; returned in UTC."""

    default_error_messages = {
        "naive": "Give a time zone, e.g. 2025-11-25T10:00:00Z.",
    }

    def enforce_timezone(self, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            self.fail("naive")
        try:
            return value.astimezone(dt.UTC)
        except OverflowError:
            self.fail("overflow")


class TriggerSerializer(serializers.Serializer[dict[str, Any]]):
    """POST /reconciliation/trigger body. ``from``/``to``: TIMESTAMP_RANGE; ``sample_size``: SAMPLE."""

    tables = serializers.ListField(
        child=serializers.RegexField(
            rf"^{TABLE_NAME_PATTERN}$",
            max_length=48,
            error_messages={"invalid": "Not a table name (letters, digits and underscores)."},
        ),
        min_length=1,
        max_length=100,
        help_text="Registered table names; all must be known or no job is created.",
    )
    validation_strategy = serializers.ChoiceField(choices=ValidationStrategy.choices)
    sample_size = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_SAMPLE_SIZE,
        help_text="SAMPLE only: how many keys to sample (default RECONCILIATION_SAMPLE_SIZE).",
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        # "from" is a Python keyword, so these two are added here rather than declared.
        fields = super().get_fields()
        sample_size = fields.pop("sample_size")
        fields["from"] = AwareDateTimeField(
            required=False,
            help_text="TIMESTAMP_RANGE only: window start, inclusive (ISO 8601 with offset). "
            "Default: `to` minus RECONCILIATION_INTERVAL_MINUTES minus 5 minutes of overlap.",
        )
        fields["to"] = AwareDateTimeField(
            required=False,
            help_text="TIMESTAMP_RANGE only: window end, exclusive (ISO 8601 with offset). "
            "Default: when the job starts. The job's `window` shows the window used.",
        )
        fields["sample_size"] = sample_size
        return fields

    def validate_tables(self, tables: list[str]) -> list[str]:
        twice = sorted({name for name in tables if tables.count(name) > 1})
        if twice:
            raise serializers.ValidationError(f"Listed more than once: {', '.join(twice)}.")
        return tables


class TriggerResponseSerializer(serializers.Serializer[dict[str, Any]]):
    job_ids = serializers.ListField(child=serializers.UUIDField())
    status = serializers.ChoiceField(choices=[JobStatus.RUNNING.value])


# --- resolve ------------------------------------------------------------------------------


class ResolveSerializer(serializers.Serializer[dict[str, Any]]):
    resolution_status = serializers.ChoiceField(
        choices=[(s.value, s.label) for s in CLOSED_STATUSES]
    )
    resolution_notes = serializers.CharField(
        max_length=10_000, help_text="What was done, or why the mismatch is ignored."
    )


class ResolvedMismatchSerializer(serializers.Serializer[dict[str, Any]]):
    mismatch_id = serializers.UUIDField()
    resolution_status = serializers.ChoiceField(choices=ResolutionStatus.choices)
    resolved_at = serializers.DateTimeField()


class ResolveResponseSerializer(serializers.Serializer[dict[str, Any]]):
    status = serializers.ChoiceField(choices=["success"])
    mismatch = ResolvedMismatchSerializer()


# --- errors -------------------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer[dict[str, Any]]):
    """Every error body: ``{"error": code, "detail": message, "fields": {...}}``."""

    error = serializers.CharField(help_text="A stable code, e.g. invalid_request, not_found.")
    detail = serializers.CharField(help_text="What went wrong, for a human.")
    # Declared fields leave the class body, so this does not shadow Serializer.fields.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.JSONField(),
        help_text="Problems by request field or query parameter (empty when none).",
    )


class JobConflictSerializer(ErrorSerializer):
    """409 from the trigger: a listed table already has a RUNNING job."""

    job_id = serializers.UUIDField(help_text="The running job.")
    table_name = serializers.CharField()


class ResumeConflictSerializer(ErrorSerializer):
    """409 from resume: the job is not FAILED, or its table already has a RUNNING job."""

    job_id = serializers.UUIDField(
        help_text="job_not_resumable: this job; job_already_running: the running job."
    )
    table_name = serializers.CharField()
    status = serializers.ChoiceField(choices=JobStatus.choices, help_text="That job's status.")


class RecheckResponseSerializer(serializers.Serializer[dict[str, Any]]):
    """POST /reconciliation/mismatches/{id}/recheck: what the re-read found."""

    status = serializers.ChoiceField(choices=["success"])
    outcome = serializers.ChoiceField(
        choices=["closed", "still_different", "changed"],
        help_text="closed: the rows are equal now (AUTO_RESOLVED); still_different: as "
        "captured; changed: still different, rows refreshed.",
    )
    mismatch = serializers.DictField(help_text="The mismatch as in the mismatch list.")


class ResolveConflictSerializer(ErrorSerializer):
    """409 from resolve: the mismatch was already closed."""

    resolution_status = serializers.ChoiceField(choices=ResolutionStatus.choices)
    resolved_by = serializers.CharField(allow_null=True)
    resolved_at = serializers.DateTimeField(allow_null=True)
