"""An erasure's work on cdcrecon's own copies of the row: the mismatches that captured it
are scrubbed, and earlier audit entries about the same key lose the row data they held."""

from __future__ import annotations

from collections.abc import Collection

from django.db.models import Case, F, JSONField, Value, When
from django.utils import timezone

from gdpr.models import AuditLogEntry
from reconciliation.models import Mismatch, TableMapping

# Keys of AuditLogEntry.details that never hold row data.  Anything else (a repair's "before"
# and "after" rows) is removed from earlier entries about an erased key.
NON_PERSONAL_DETAIL_KEYS = frozenset(
    {
        "action",
        "audit_entries_redacted",
        "mismatch_id",
        "mismatch_type",
        "mismatches_scrubbed",
        "postgres_table",
        "source_changed_columns",
        "table_name",
        "target",
    }
)


def redaction_marker(entry: AuditLogEntry) -> dict[str, str]:
    return {"_redacted": f"GDPR erasure {entry.pk}"}


def scrub_mismatches(
    mapping: TableMapping, key_texts: Collection[str], entry: AuditLogEntry
) -> int:
    """Replace the captured rows (and their checksums) of that key's mismatches with a marker.

    The mismatches keep their ids and resolution status; ``erased_at`` says when.  A side
    that had no row (NULL) stays NULL.  Returns how many mismatches were scrubbed.
    """
    marker = Value(redaction_marker(entry), output_field=JSONField())
    return Mismatch.objects.filter(
        table_name=mapping.name, primary_key_value__in=set(key_texts), erased_at__isnull=True
    ).update(
        cassandra_data=Case(
            When(cassandra_data__isnull=True, then=F("cassandra_data")),
            default=marker,
            output_field=JSONField(),
        ),
        postgres_data=Case(
            When(postgres_data__isnull=True, then=F("postgres_data")),
            default=marker,
            output_field=JSONField(),
        ),
        # A checksum of personal data is still personal data (a guessable hash).
        cassandra_checksum=None,
        postgres_checksum=None,
        erased_at=timezone.now(),
    )


def redact_audit_details(
    mapping: TableMapping, key_texts: Collection[str], entry: AuditLogEntry
) -> int:
    """Remove copies of the row from earlier completed audit entries about the same key.

    Only ``details`` changes: keys that may hold row data are dropped and a ``_redacted``
    note added, the one change the audit trigger allows on a completed entry.  Who asked,
    why, when and what each store answered stay.  Returns how many entries were redacted.
    """
    marker = redaction_marker(entry)["_redacted"]
    earlier = (
        AuditLogEntry.objects.filter(
            keyspace=mapping.cassandra_keyspace,
            table=mapping.cassandra_table,
            primary_key__in=set(key_texts),
            completed_at__isnull=False,
        )
        .exclude(pk=entry.pk)
        .exclude(details__has_key="_redacted")
    )
    redacted = 0
    for other in earlier:
        kept = {k: v for k, v in other.details.items() if k in NON_PERSONAL_DETAIL_KEYS}
        if kept == other.details:
            continue
        AuditLogEntry.objects.filter(pk=other.pk).update(details={**kept, "_redacted": marker})
        redacted += 1
    return redacted
