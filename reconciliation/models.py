"""What cdcrecon stores: the tables it reconciles, the jobs it ran and the rows that drifted."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings as django_settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from cdcrecon.conf import TABLE_NAME_PATTERN, settings
from reconciliation.choices import (
    AlertLevel,
    JobPhase,
    JobStatus,
    JobType,
    MismatchType,
    ResolutionStatus,
    ValidationStrategy,
)

identifier_validator = RegexValidator(
    rf"^{TABLE_NAME_PATTERN}$",
    "Use letters, digits and underscores only, starting with a letter or underscore "
    "(at most 48 characters).",
)


def default_excluded_columns() -> list[str]:
    return ["_cdc_*"]


class TableMapping(models.Model):
    """One Cassandra table and the PostgreSQL table the CDC pipeline copies it into."""

    name = models.CharField(
        max_length=48,
        unique=True,
        validators=[identifier_validator],
        help_text="The table's name in the API, e.g. 'users'.",
    )
    cassandra_keyspace = models.CharField(max_length=48, validators=[identifier_validator])
    cassandra_table = models.CharField(max_length=48, validators=[identifier_validator])
    postgres_schema = models.CharField(max_length=63, validators=[identifier_validator])
    postgres_table = models.CharField(max_length=63, validators=[identifier_validator])
    partition_key_columns = models.JSONField(
        default=list,
        blank=True,
        help_text="Partition key columns in order; discovered from system_schema when blank.",
    )
    clustering_columns = models.JSONField(
        default=list,
        blank=True,
        help_text="Clustering columns in order; discovered with the partition key.",
    )
    timestamp_column = models.CharField(
        max_length=48,
        default="updated_at",
        validators=[identifier_validator],
        help_text="Column used by TIMESTAMP_RANGE validation.",
    )
    excluded_columns = models.JSONField(
        default=default_excluded_columns,
        blank=True,
        help_text="Column names or shell patterns left out of comparison (e.g. '_cdc_*').",
    )
    warning_threshold = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0)],
        help_text="Drift % for a warning; blank means RECONCILIATION_DRIFT_WARNING_THRESHOLD.",
    )
    critical_threshold = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0)],
        help_text="Drift % for a critical alert; blank means RECONCILIATION_DRIFT_CRITICAL_THRESHOLD.",
    )
    scheduled_strategy = models.CharField(
        max_length=20, choices=ValidationStrategy.choices, default=ValidationStrategy.CHECKSUM
    )
    enabled = models.BooleanField(default=True, help_text="Included in the scheduled runs.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["cassandra_keyspace", "cassandra_table"], name="unique_cassandra_table"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def key_columns(self) -> list[str]:
        return [*self.partition_key_columns, *self.clustering_columns]

    @property
    def effective_warning_threshold(self) -> float:
        if self.warning_threshold is None:
            return settings.reconciliation.drift_warning_threshold
        return self.warning_threshold

    @property
    def effective_critical_threshold(self) -> float:
        if self.critical_threshold is None:
            return settings.reconciliation.drift_critical_threshold
        return self.critical_threshold

    def alert_level_for(self, drift_percentage: float | None) -> str:
        if drift_percentage is None:
            return AlertLevel.NONE
        if drift_percentage > self.effective_critical_threshold:
            return AlertLevel.CRITICAL
        if drift_percentage > self.effective_warning_threshold:
            return AlertLevel.WARNING
        return AlertLevel.NONE


class ReconciliationJob(models.Model):
    """One run of one validation strategy over one table."""

    job_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    table_name = models.CharField(max_length=48, db_index=True)
    job_type = models.CharField(max_length=20, choices=JobType.choices, default=JobType.MANUAL)
    validation_strategy = models.CharField(max_length=20, choices=ValidationStrategy.choices)
    parameters = models.JSONField(
        default=dict, blank=True, help_text="from/to window, sample size, as requested."
    )
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(default=timezone.now)
    progress = models.FloatField(
        default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    cassandra_row_count = models.BigIntegerField(null=True, blank=True)
    postgres_row_count = models.BigIntegerField(null=True, blank=True)
    keys_examined = models.BigIntegerField(null=True, blank=True)
    mismatch_count = models.BigIntegerField(default=0)
    transient_count = models.BigIntegerField(
        default=0, help_text="Differences that healed within the re-check delay (CDC lag)."
    )
    drift_percentage = models.FloatField(null=True, blank=True)
    unreadable_value_count = models.BigIntegerField(
        default=0,
        help_text="Values either store held that could not be read as the column's type "
        "(each reported as its row's DATA_MISMATCH, shown as written).",
    )
    drift_ci_low = models.FloatField(
        null=True, blank=True, help_text="SAMPLE: lower bound of the 95% Wilson interval (%)."
    )
    drift_ci_high = models.FloatField(
        null=True, blank=True, help_text="SAMPLE: upper bound of the 95% Wilson interval (%)."
    )
    alert_fired = models.BooleanField(default=False)
    alert_level = models.CharField(
        max_length=10, choices=AlertLevel.choices, default=AlertLevel.NONE
    )
    schema_warnings = models.JSONField(default=list, blank=True)
    error_message = models.TextField(blank=True, default="")
    phase = models.CharField(max_length=12, choices=JobPhase.choices, default=JobPhase.QUEUED)
    requested_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(
                fields=["table_name", "status", "started_at"], name="job_table_status_started"
            ),
            models.Index(fields=["status", "started_at"], name="job_status_started"),
            models.Index(fields=["started_at"], name="job_started"),
        ]
        constraints = [
            # The atomic claim: at most one RUNNING job per table, enforced by PostgreSQL.
            models.UniqueConstraint(
                fields=["table_name"],
                condition=Q(status="RUNNING"),
                name="one_running_job_per_table",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.table_name} {self.validation_strategy} {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def duration_seconds(self) -> float | None:
        if self.completed_at is None:
            return None
        return (self.completed_at - self.started_at).total_seconds()

    def touch(self, progress: float | None = None) -> None:
        """Record that the job is alive (and how far it got), without a full save."""
        fields: dict[str, Any] = {"heartbeat_at": timezone.now()}
        if progress is not None:
            fields["progress"] = max(0.0, min(1.0, progress))
        ReconciliationJob.objects.filter(pk=self.pk, status=JobStatus.RUNNING).update(**fields)
        for name, value in fields.items():
            setattr(self, name, value)

    def enter_phase(self, phase: str) -> None:
        """Record the phase a RUNNING job has reached (and that it is alive)."""
        ReconciliationJob.objects.filter(pk=self.pk, status=JobStatus.RUNNING).update(
            phase=phase, heartbeat_at=timezone.now()
        )
        self.phase = phase

    def mark_failed(self, error: str) -> bool:
        """End a RUNNING job as FAILED; False when it had already ended."""
        now = timezone.now()
        updated = ReconciliationJob.objects.filter(pk=self.pk, status=JobStatus.RUNNING).update(
            status=JobStatus.FAILED, error_message=error, completed_at=now, heartbeat_at=now
        )
        if updated:
            self.status, self.error_message, self.completed_at = JobStatus.FAILED, error, now
        return bool(updated)


class Mismatch(models.Model):
    """One row that differs between Cassandra and PostgreSQL, found by one job."""

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

    class Meta:
        ordering = ["-detected_at", "mismatch_id"]
        verbose_name_plural = "mismatches"
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
        ]
        permissions = [("repair_mismatch", "Can repair a mismatch from the source (Cassandra)")]

    def __str__(self) -> str:
        return f"{self.table_name} {self.primary_key_value} {self.mismatch_type}"

    def resolve(self, user: Any, status: str, notes: str) -> None:
        """Close a PENDING mismatch as resolved or ignored, recording who, when and why.

        The transition is a conditional UPDATE, so when two operators resolve the same
        mismatch at once exactly one wins; the other gets ``AlreadyResolved`` naming the
        winner.  The API's resolve endpoint and the admin's actions both call this.
        """
        if status not in CLOSED_STATUSES:
            raise ValueError(
                f"resolution_status must be one of {', '.join(CLOSED_STATUSES)}, not {status!r}."
            )
        notes = (notes or "").strip()
        if not notes:
            raise ValueError(
                "resolution_notes is required: say what was done or why it is ignored."
            )
        now = timezone.now()
        updated = Mismatch.objects.filter(
            pk=self.pk, resolution_status=ResolutionStatus.PENDING
        ).update(
            resolution_status=status, resolution_notes=notes, resolved_at=now, resolved_by=user
        )
        if not updated:
            self.refresh_from_db()
            raise AlreadyResolved(self)
        self.resolution_status, self.resolution_notes = status, notes
        self.resolved_at, self.resolved_by = now, user

    def reopen(self, user: Any, notes: str) -> None:
        """Put a resolved or ignored mismatch back to PENDING, keeping the earlier notes."""
        notes = (notes or "").strip()
        if not notes:
            raise ValueError("A note is required to reopen a mismatch.")
        who = getattr(user, "username", None) or "unknown"
        stamp = timezone.now().strftime("%Y-%m-%d %H:%M UTC")
        history = f"{self.resolution_notes}\n\n" if self.resolution_notes else ""
        self.resolution_notes = f"{history}[reopened by {who}, {stamp}] {notes}"
        updated = Mismatch.objects.filter(pk=self.pk, resolution_status__in=CLOSED_STATUSES).update(
            resolution_status=ResolutionStatus.PENDING,
            resolution_notes=self.resolution_notes,
            resolved_at=None,
            resolved_by=None,
        )
        if not updated:
            self.refresh_from_db()
            raise ValueError("This mismatch is already pending.")
        self.resolution_status, self.resolved_at, self.resolved_by = (
            ResolutionStatus.PENDING,
            None,
            None,
        )


CLOSED_STATUSES = (
    ResolutionStatus.MANUAL_RESOLVED,
    ResolutionStatus.AUTO_RESOLVED,
    ResolutionStatus.IGNORED,
)


class AlreadyResolved(Exception):
    """Another operator closed this mismatch first."""

    def __init__(self, mismatch: Mismatch) -> None:
        who = mismatch.resolved_by.get_username() if mismatch.resolved_by else "someone"
        when = f" at {mismatch.resolved_at:%Y-%m-%d %H:%M:%S} UTC" if mismatch.resolved_at else ""
        super().__init__(
            f"Mismatch {mismatch.mismatch_id} was already {mismatch.resolution_status} by {who}{when}."
        )
        self.mismatch = mismatch


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
    0002_list_indexes), in the same transaction as the rows, so a sum over these rows is
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
