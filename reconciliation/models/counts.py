"""Exact mismatch counts per (table, type, status), kept by PostgreSQL triggers for the
list's ``total``."""

from __future__ import annotations

from django.db import models

from reconciliation.choices import (
    MismatchType,
    ResolutionStatus,
)


class MismatchCountQuerySet(models.QuerySet["MismatchCount"]):
    def total(
        self,
        *,
        table_name: str | None = None,
        mismatch_type: str | None = None,
        resolution_status: str | None = None,
    ) -> int:
        """How many mismatches match these filters (None: any), exactly, without a COUNT(*)."""
        wanted = {
            "table_name": table_name,
            "mismatch_type": mismatch_type,
            "resolution_status": resolution_status,
        }
        rows = self.filter(**{k: v for k, v in wanted.items() if v is not None})
        return int(rows.aggregate(n=models.Sum("count"))["n"] or 0)


class MismatchCount(models.Model):
    """How many mismatches there are per (table, type, status): ``total`` for the mismatch list.

    Maintained by statement-level PostgreSQL triggers on the mismatch table (migration
    0004_list_indexes), in the same transaction as the rows, so a sum over these rows is
    exactly ``COUNT(*)`` for the same snapshot.  Never written by Django code.
    """

    table_name = models.CharField(max_length=48)
    mismatch_type = models.CharField(max_length=24, choices=MismatchType.choices)
    resolution_status = models.CharField(max_length=20, choices=ResolutionStatus.choices)
    count = models.BigIntegerField(default=0)

    objects = MismatchCountQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["table_name", "mismatch_type", "resolution_status"],
                name="mismatch_count_group",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.table_name} {self.mismatch_type} {self.resolution_status}: {self.count}"
