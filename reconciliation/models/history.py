"""The history of each difference: one event per status change, who made it and why.

Written only by ``reconciliation.ledger`` (``transition`` for one row, ``write_events`` for a
run's batch), so every status change in the product leaves exactly one event.  The
mismatch's own ``resolution_notes`` hold operators' words; machine events live here.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from reconciliation.choices import Actor, ResolutionStatus


class MismatchEvent(models.Model):
    """One status change of one difference (append-only)."""

    # No database constraints: the history is written in bulk beside the ledger, and the
    # mismatch and job tables stay truncatable on their own (the ORM still cascades).
    mismatch = models.ForeignKey(
        "reconciliation.Mismatch",
        on_delete=models.CASCADE,
        related_name="events",
        db_constraint=False,
    )
    #: Blank for the event that put the difference in the ledger.
    from_status = models.CharField(
        max_length=20, choices=ResolutionStatus.choices, blank=True, default=""
    )
    to_status = models.CharField(max_length=20, choices=ResolutionStatus.choices)
    at = models.DateTimeField(default=timezone.now)
    actor_kind = models.CharField(max_length=10, choices=Actor.choices)
    #: The operator's username, ``policy:<table>``, ``job <id>`` or ``in-flight re-check``.
    actor = models.CharField(max_length=200)
    job = models.ForeignKey(
        "reconciliation.ReconciliationJob",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    reason = models.TextField(blank=True, default="")
    #: IN_FLIGHT -> AUTO_RESOLVED because the rows were equal (the copy arrived): the seconds
    #: from the source row's write time to the read that found it equal (``arrivals``).
    arrival_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["at", "pk"]
        indexes = [
            models.Index(fields=["mismatch", "at"], name="mismatch_event_timeline"),
            # The arrival histogram and its last day's percentiles (few rows: arrivals only).
            models.Index(
                fields=["at"],
                condition=models.Q(arrival_seconds__isnull=False),
                name="mismatch_event_arrivals",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.mismatch_id}: {self.from_status or 'new'} -> {self.to_status}"
