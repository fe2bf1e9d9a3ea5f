"""What a table's repair policy did, one row per difference it acted on (append-only).

The job's ``repair_summary`` sums a run; these rows are the detail behind it, the source of
``cdc_reconciliation_auto_repairs_total{table,type,result}`` and of the per-hour cap (the
repairs a table's policy made in the last hour are counted here, whichever worker made them).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from reconciliation.choices import AutoRepairResult, MismatchType


class AutoRepairAction(models.Model):
    """One difference a policy run repaired, would repair, skipped or failed to repair."""

    job = models.ForeignKey(
        "reconciliation.ReconciliationJob", on_delete=models.CASCADE, related_name="repairs"
    )
    # No database constraint: the action outlives its mismatch (it names the key itself),
    # and the mismatch table stays truncatable on its own.
    mismatch = models.ForeignKey(
        "reconciliation.Mismatch",
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    table_name = models.CharField(max_length=48)
    primary_key_value = models.TextField()
    mismatch_type = models.CharField(max_length=24, choices=MismatchType.choices)
    policy = models.CharField(max_length=10)
    result = models.CharField(max_length=16, choices=AutoRepairResult.choices)
    reason = models.CharField(max_length=32, blank=True, default="")
    detail = models.TextField(blank=True, default="")
    audit_entry = models.ForeignKey(
        "gdpr.AuditLogEntry", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [
            # The per-hour cap: a table's repairs since an instant.
            models.Index(fields=["table_name", "result", "created_at"], name="autorepair_cap"),
        ]

    def __str__(self) -> str:
        return f"{self.table_name} {self.primary_key_value} {self.result}"
