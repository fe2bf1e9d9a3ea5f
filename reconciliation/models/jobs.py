"""Reconciliation jobs: one run of one validation strategy over one table."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings as django_settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q, QuerySet
from django.utils import timezone

from reconciliation.choices import (
    AlertLevel,
    JobPhase,
    JobStatus,
    JobType,
    RecheckRule,
    ValidationStrategy,
)

#: Strategies whose verdict covers the whole table (the "full check" beside newer estimates).
FULL_CHECK_STRATEGIES = (ValidationStrategy.CHECKSUM,)


def conclusive_q() -> Q:
    """``ReconciliationJob.is_conclusive`` as a filter (a NULL ``keys_examined`` passes)."""
    return Q(status=JobStatus.COMPLETED, drift_percentage__isnull=False) & ~Q(keys_examined=0)


class ReconciliationJobQuerySet(QuerySet["ReconciliationJob"]):
    def conclusive(self) -> ReconciliationJobQuerySet:
        """COMPLETED jobs that examined something (see ``ReconciliationJob.is_conclusive``)."""
        return self.filter(conclusive_q())

    def latest_conclusive(self) -> ReconciliationJobQuerySet:
        """The latest conclusive COMPLETED job per (table_name, validation_strategy)."""
        return (
            self.conclusive()
            .order_by("table_name", "validation_strategy", "-started_at", "-job_id")
            .distinct("table_name", "validation_strategy")
        )


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
    # db_default too: rows written by raw SQL or by a not yet upgraded worker stay valid.
    unreadable_value_count = models.BigIntegerField(
        default=0,
        db_default=0,
        help_text="Values either store held that could not be read as the column's type "
        "(each reported as its row's DATA_MISMATCH, shown as written).",
    )
    in_flight_count = models.BigIntegerField(
        default=0,
        db_default=0,
        help_text="Differences whose source row was younger than the CDC lag budget when read: "
        "not counted as drift; re-checked once the budget has passed.",
    )
    expired_count = models.BigIntegerField(
        default=0,
        db_default=0,
        help_text="Differences whose source row's TTL ran out before the re-check: not counted.",
    )
    recheck_rule = models.CharField(
        max_length=12,
        choices=RecheckRule.choices,
        blank=True,
        default="",
        db_default="",
        help_text="How in-flight differences were told from drift.",
    )
    lag_budget_seconds = models.FloatField(
        null=True, blank=True, help_text="The CDC lag budget the job judged with (seconds)."
    )
    source_rows_per_second = models.FloatField(
        null=True, blank=True, help_text="The rate at which the job read Cassandra (rows/s)."
    )
    repair_summary = models.JSONField(
        null=True,
        blank=True,
        help_text="What the table's repair policy did after this job (eligible, repaired, "
        "skipped and why, failed).",
    )
    repair_run = models.JSONField(
        null=True,
        blank=True,
        help_text="The repair policy's run after this job while it works and once done "
        "(progress, deliveries, abandoned audit entries): reconciliation.repair.runs.",
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
    phase = models.CharField(
        max_length=12,
        choices=JobPhase.choices,
        default=JobPhase.QUEUED,
        db_default=JobPhase.QUEUED,
    )
    requested_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # The Celery queue the job's task came from: its segments go to the same queue.
    queue = models.CharField(max_length=200, blank=True, default="", editable=False)

    objects = ReconciliationJobQuerySet.as_manager()

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
    def is_conclusive(self) -> bool:
        """Did the job check anything?  Every strategy counts what it examined in
        ``keys_examined`` (ROW_COUNT: the larger count), so a completed job with none is
        *inconclusive*: it sets no drift gauge and earns no green badge (``run_in_process`` stores no
        drift for it).  A job without ``keys_examined`` (rows written before it was
        recorded) counts as conclusive when it has a drift."""
        return (
            self.status == JobStatus.COMPLETED
            and self.drift_percentage is not None
            and self.keys_examined != 0
        )

    @property
    def is_inconclusive(self) -> bool:
        return self.status == JobStatus.COMPLETED and not self.is_conclusive

    @property
    def window(self) -> dict[str, Any] | None:
        """TIMESTAMP_RANGE: the ``{"from", "to"}`` window checked (as run, or as asked)."""
        if self.validation_strategy != ValidationStrategy.TIMESTAMP_RANGE:
            return None
        parameters = self.parameters or {}
        return {"from": parameters.get("from"), "to": parameters.get("to")}

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
