"""The mismatch ledger's rows: one standing difference per (table, primary key) across runs,
and the per-job ``JobFinding``; the list's trigger-kept totals are ``counts.MismatchCount``.

How a difference moves between statuses is decided in ``reconciliation.ledger`` (the
transition table, the history); the operators' ``resolve`` and ``reopen`` are model methods
that make their move through ``ledger.transition``.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings as django_settings
from django.db import models
from django.db.models import Q, QuerySet
from django.db.models.functions import Now
from django.utils import timezone

from reconciliation.choices import MismatchType, ResolutionStatus
from reconciliation.engine import Difference
from reconciliation.ledger.statuses import (
    KEY_HOLDING_STATUSES,
    OPEN_STATUSES,
    OPERATOR_CLOSES,
    REOPENABLE,
)
from reconciliation.ledger.transition import Actor, StatusChanged, transition
from reconciliation.models.jobs import ReconciliationJob

#: What a run (or a re-check) saw of one key that differs now: the engine's Difference.
Finding = Difference


class MismatchQuerySet(QuerySet["Mismatch"]):
    def open(self) -> MismatchQuerySet:
        return self.filter(resolution_status__in=OPEN_STATUSES)


class Mismatch(models.Model):
    """One standing difference of one row (table, primary key) between Cassandra and
    PostgreSQL, across runs: at most one is open per key (PostgreSQL enforces it)."""

    mismatch_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.ForeignKey(ReconciliationJob, on_delete=models.CASCADE, related_name="mismatches")
    table_name = models.CharField(max_length=48)
    primary_key_value = models.TextField(
        help_text="Canonical text of the key; a JSON array for a composite key."
    )
    mismatch_type = models.CharField(max_length=24, choices=MismatchType.choices)
    # NULL, not "": the guide shows a missing side's checksum as null.
    cassandra_checksum = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    postgres_checksum = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    cassandra_data = models.JSONField(null=True, blank=True)
    postgres_data = models.JSONField(null=True, blank=True)
    detected_at = models.DateTimeField(default=timezone.now)
    resolution_status = models.CharField(
        max_length=20, choices=ResolutionStatus.choices, default=ResolutionStatus.PENDING
    )
    resolution_notes = models.TextField(blank=True, default="")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    erased_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when a GDPR erasure scrubbed the captured rows."
    )
    # Database defaults too, so that rows written by plain SQL (bulk loads) are valid.
    first_seen_at = models.DateTimeField(default=timezone.now, db_default=Now())
    last_seen_at = models.DateTimeField(
        default=timezone.now,
        db_default=Now(),
        help_text="When a run (or a re-check) last captured the rows.",
    )
    times_seen = models.PositiveIntegerField(
        default=1, db_default=1, help_text="How many runs (and re-checks) found this difference."
    )
    last_job = models.ForeignKey(
        ReconciliationJob,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The latest job that found this difference.",
    )
    reappeared_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Set when a resolved difference was found again and reopened.",
    )
    source_write_time = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Cassandra's write time of the source row when last read (the latest of its "
        "regular columns' WRITETIME); null when the row is not in Cassandra.",
    )
    source_ttl_seconds = models.IntegerField(
        null=True,
        blank=True,
        help_text="The source row's remaining TTL when last read (seconds); null: no TTL.",
    )
    recheck_after = models.DateTimeField(
        null=True,
        blank=True,
        help_text="IN_FLIGHT: when the CDC lag budget has passed and the key is read again.",
    )

    objects = MismatchQuerySet.as_manager()

    class Meta:
        ordering = ["-detected_at", "mismatch_id"]
        verbose_name_plural = "mismatches"
        constraints = [
            # The ledger: at most one open difference per (table, primary key).
            models.UniqueConstraint(
                fields=["table_name", "primary_key_value"],
                condition=Q(resolution_status__in=["PENDING", "IGNORED", "IN_FLIGHT"]),
                name="one_open_mismatch_per_key",
            ),
        ]
        indexes = [
            models.Index(
                fields=["table_name", "mismatch_type", "resolution_status"],
                name="mismatch_table_type_status",
            ),
            models.Index(fields=["table_name", "primary_key_value"], name="mismatch_table_key"),
            models.Index(
                fields=["resolution_status", "detected_at"], name="mismatch_status_detected"
            ),
            # The list's order (newest first, id for ties) without and with its common
            # filters; the page's ids come from an index-only scan (issue 11 point 9).
            models.Index(fields=["-detected_at", "mismatch_id"], name="mismatch_detected"),
            models.Index(
                fields=["table_name", "-detected_at", "mismatch_id"],
                name="mismatch_table_detected",
            ),
            models.Index(
                fields=["table_name", "resolution_status", "-detected_at", "mismatch_id"],
                name="mismatch_table_status_detected",
            ),
            # The in-flight re-check's "which are due" (few rows: only those in flight).
            models.Index(
                fields=["recheck_after"],
                condition=Q(resolution_status="IN_FLIGHT"),
                name="mismatch_in_flight_due",
            ),
        ]
        permissions = [("repair_mismatch", "Can repair a mismatch from the source (Cassandra)")]

    def __str__(self) -> str:
        return f"{self.table_name} {self.primary_key_value} {self.mismatch_type}"

    @property
    def is_open(self) -> bool:
        return self.resolution_status in OPEN_STATUSES

    @property
    def holds_key(self) -> bool:
        """Open or in flight: the key's one row that is not closed."""
        return self.resolution_status in KEY_HOLDING_STATUSES

    @property
    def is_in_flight(self) -> bool:
        return self.resolution_status == ResolutionStatus.IN_FLIGHT

    def resolve(self, user: Any, status: str, notes: str) -> None:
        """Close a PENDING mismatch as resolved or ignored, recording who, when and why.

        The transition is a conditional UPDATE (``ledger.transition``), so when two operators
        resolve the same mismatch at once exactly one wins; the other gets
        ``AlreadyResolved`` naming the winner.  The API's resolve endpoint and the admin's
        actions both call this; so does a repair (its note says what it wrote).
        """
        if status not in (*OPERATOR_CLOSES, ResolutionStatus.AUTO_REPAIRED):
            raise ValueError(
                f"resolution_status must be one of {', '.join(CLOSED_STATUSES)}, not {status!r}."
            )
        notes = (notes or "").strip()
        if not notes:
            raise ValueError(
                "resolution_notes is required: say what was done or why it is ignored."
            )
        self.close(Actor.operator(user), status, notes)

    def close(self, actor: Actor, status: str, notes: str) -> None:
        """Move a PENDING mismatch to ``status`` by ``actor`` with ``notes`` (``resolve``; a
        repair policy closes as itself)."""
        if self.resolution_status != ResolutionStatus.PENDING:
            raise AlreadyResolved(self)
        now = timezone.now()
        fields = {"resolution_notes": notes, "resolved_at": now, "resolved_by": actor.user}
        try:
            transition(self, status, actor=actor, reason=notes, fields=fields, now=now)
        except StatusChanged:
            self.refresh_from_db()
            raise AlreadyResolved(self) from None

    def reopen(self, user: Any, notes: str) -> None:
        """Put a resolved or ignored mismatch back to PENDING; the operator's words are added
        to the notes and the move to the history."""
        notes = (notes or "").strip()
        if not notes:
            raise ValueError("A note is required to reopen a mismatch.")
        other = (
            Mismatch.objects.filter(
                table_name=self.table_name,
                primary_key_value=self.primary_key_value,
                resolution_status__in=KEY_HOLDING_STATUSES,
            )
            .exclude(pk=self.pk)
            .first()
        )
        if other is not None:  # at most one open difference per key
            raise ValueError(
                f"Key {self.primary_key_value!r} of {self.table_name} already has an open "
                f"mismatch ({other.mismatch_id}); work on that one instead."
            )
        if self.resolution_status not in REOPENABLE:
            raise ValueError("This mismatch is already pending.")
        earlier = f"{self.resolution_notes}\n\n" if self.resolution_notes else ""
        fields = {
            "resolution_notes": earlier + notes,
            "resolved_at": None,
            "resolved_by": None,
        }
        try:
            transition(
                self,
                ResolutionStatus.PENDING,
                actor=Actor.operator(user),
                reason=notes,
                fields=fields,
            )
        except StatusChanged:
            self.refresh_from_db()
            raise ValueError("This mismatch is already pending.") from None


#: What the operators may close a PENDING difference as (``ledger.statuses``).
CLOSED_STATUSES = OPERATOR_CLOSES

#: What a run's findings (``ledger.record``) write back to an existing row.
LEDGER_WRITE_FIELDS = (
    "mismatch_type",
    "cassandra_checksum",
    "postgres_checksum",
    "cassandra_data",
    "postgres_data",
    "resolution_status",
    "resolution_notes",
    "resolved_at",
    "resolved_by",
    "last_seen_at",
    "times_seen",
    "last_job",
    "reappeared_at",
    "source_write_time",
    "source_ttl_seconds",
    "recheck_after",
)


class JobFinding(models.Model):
    """Which differences a job found: ``GET /reconciliation/jobs/{id}`` lists these, so a
    job keeps its own findings although the difference objects live on across runs."""

    job = models.ForeignKey(ReconciliationJob, on_delete=models.CASCADE, related_name="findings")
    mismatch = models.ForeignKey(Mismatch, on_delete=models.CASCADE, related_name="findings")
    mismatch_type = models.CharField(max_length=24, choices=MismatchType.choices)
    found_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-found_at"]
        constraints = [
            models.UniqueConstraint(fields=["job", "mismatch"], name="one_finding_per_job_key"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id} found {self.mismatch_id}"


class AlreadyResolved(Exception):
    """Another operator closed this mismatch first."""

    def __init__(self, mismatch: Mismatch) -> None:
        who = mismatch.resolved_by.get_username() if mismatch.resolved_by else "someone"
        when = f" at {mismatch.resolved_at:%Y-%m-%d %H:%M:%S} UTC" if mismatch.resolved_at else ""
        super().__init__(
            f"Mismatch {mismatch.mismatch_id} was already {mismatch.resolution_status} by {who}{when}."
        )
        self.mismatch = mismatch
