"""The append-only audit log of every write cdcrecon makes to the reconciled stores."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class AuditAction(models.TextChoices):
    ERASURE = "ERASURE", "GDPR erasure"
    REPAIR = "REPAIR", "Repair from source"


class StoreStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    SUCCESS = "SUCCESS", "Success"
    NOT_FOUND = "NOT_FOUND", "Not found"
    FAILED = "FAILED", "Failed"
    SKIPPED = "SKIPPED", "Not touched"
    #: A repair attempt whose run was lost (its worker died) before it completed: whether
    #: the target was written is unknown; the resumed run re-read both stores instead.
    ABANDONED = "ABANDONED", "Abandoned (the run was lost)"


class AuditLogEntry(models.Model):
    """One erasure or repair request and what each store answered.

    Append-only: a database trigger (migration 0002) rejects any DELETE and any UPDATE of an
    entry once it is completed; the admin is read-only.
    """

    action = models.CharField(
        max_length=10, choices=AuditAction.choices, default=AuditAction.ERASURE
    )
    requester = models.CharField(max_length=150, help_text="Username of the authenticated caller.")
    reason = models.TextField()
    keyspace = models.CharField(max_length=48)
    table = models.CharField(max_length=48)
    primary_key = models.TextField()
    requested_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    cassandra_status = models.CharField(
        max_length=10, choices=StoreStatus.choices, default=StoreStatus.PENDING
    )
    cassandra_error = models.TextField(blank=True, default="")
    postgres_status = models.CharField(
        max_length=10, choices=StoreStatus.choices, default=StoreStatus.PENDING
    )
    postgres_error = models.TextField(blank=True, default="")
    details = models.JSONField(
        default=dict,
        blank=True,
        help_text="Repair: the rows before and after; erasure: scrub counts.",
    )

    class Meta:
        db_table = "_cdc_audit_log"
        ordering = ["-requested_at", "-id"]
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"
        indexes = [
            models.Index(fields=["table", "requested_at"], name="audit_table_requested"),
            models.Index(fields=["requester", "requested_at"], name="audit_requester_requested"),
            models.Index(fields=["keyspace", "table", "primary_key"], name="audit_key"),
        ]
        permissions = [("erase_record", "Can erase a record from both stores (GDPR Art. 17)")]

    def __str__(self) -> str:
        return f"{self.action} {self.keyspace}.{self.table} {self.primary_key}"
