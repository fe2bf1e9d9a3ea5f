from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from gdpr.erasure import is_complete_erasure
from gdpr.models import AuditLogEntry


class AuditLogEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditLogEntry
        fields = [
            "id",
            "action",
            "requester",
            "reason",
            "keyspace",
            "table",
            "primary_key",
            "requested_at",
            "completed_at",
            "cassandra_status",
            "cassandra_error",
            "postgres_status",
            "postgres_error",
            "details",
        ]
        read_only_fields = fields


class ErasureRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=2000,
        help_text="Why the record is erased (ticket, request reference). Required.",
    )


class StoreOutcomeSerializer(serializers.Serializer):
    status = serializers.CharField()
    error = serializers.CharField(allow_blank=True)


class ErasureResultSerializer(serializers.Serializer):
    """What one erasure request did, per store, with the id of its audit entry."""

    audit_id = serializers.IntegerField(source="id")
    erased = serializers.SerializerMethodField()
    keyspace = serializers.CharField()
    table = serializers.CharField()
    primary_key = serializers.CharField()
    requester = serializers.CharField()
    requested_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField()
    cassandra = serializers.SerializerMethodField()
    postgres = serializers.SerializerMethodField()
    mismatches_scrubbed = serializers.SerializerMethodField()
    audit_entries_redacted = serializers.SerializerMethodField()

    def get_erased(self, entry: AuditLogEntry) -> bool:
        return is_complete_erasure(entry)

    @extend_schema_field(StoreOutcomeSerializer)
    def get_cassandra(self, entry: AuditLogEntry) -> dict[str, str]:
        return {"status": entry.cassandra_status, "error": entry.cassandra_error}

    @extend_schema_field(StoreOutcomeSerializer)
    def get_postgres(self, entry: AuditLogEntry) -> dict[str, str]:
        return {"status": entry.postgres_status, "error": entry.postgres_error}

    def get_mismatches_scrubbed(self, entry: AuditLogEntry) -> int:
        return int(entry.details.get("mismatches_scrubbed", 0))

    def get_audit_entries_redacted(self, entry: AuditLogEntry) -> int:
        return int(entry.details.get("audit_entries_redacted", 0))
