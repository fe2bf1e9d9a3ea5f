"""The tables cdcrecon reconciles, and their drift thresholds."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from cdcrecon.conf import TABLE_NAME_PATTERN, settings
from reconciliation.choices import (
    AlertLevel,
    MismatchType,
    RepairPolicy,
    ValidationStrategy,
)
from reconciliation.engine.schema import TableSpec

#: A repair policy's minimum age when neither it nor the table sets one (10 minutes).
DEFAULT_REPAIR_MIN_AGE_SECONDS = 600

identifier_validator = RegexValidator(
    rf"^{TABLE_NAME_PATTERN}$",
    "Use letters, digits and underscores only, starting with a letter or underscore "
    "(at most 48 characters).",
)


def default_excluded_columns() -> list[str]:
    return ["_cdc_*"]


@dataclass(frozen=True)
class Thresholds:
    """A table's effective drift thresholds (%): its own values, else the settings'."""

    warning: float
    critical: float

    @classmethod
    def effective(cls, warning: float | None = None, critical: float | None = None) -> Thresholds:
        """A table's own thresholds where it sets them, else RECONCILIATION_DRIFT_WARNING_
        THRESHOLD / _CRITICAL_THRESHOLD: the one fallback."""
        conf = settings.reconciliation
        return cls(
            conf.drift_warning_threshold if warning is None else warning,
            conf.drift_critical_threshold if critical is None else critical,
        )

    def alert_level(self, drift_percentage: float | None) -> str:
        """The one definition of an alert level: strictly above a threshold."""
        if drift_percentage is None:
            return AlertLevel.NONE
        if drift_percentage > self.critical:
            return AlertLevel.CRITICAL
        if drift_percentage > self.warning:
            return AlertLevel.WARNING
        return AlertLevel.NONE


def thresholds_for_table(name: str, mapping: TableMapping | None = None) -> Thresholds:
    """The thresholds for table ``name``: the mapping's own values where set, else
    RECONCILIATION_DRIFT_{WARNING,CRITICAL}_THRESHOLD (also for an unregistered table)."""
    if mapping is None:
        mapping = TableMapping.objects.filter(name=name).first()
    return Thresholds.effective() if mapping is None else mapping.thresholds


#: The repair policy's fields (checked together by ``TableMapping.clean``; the admin form
#: and ``PATCH /reconciliation/tables/{name}`` both edit them).
REPAIR_POLICY_FIELDS = (
    "repair_policy",
    "repair_missing_in_target",
    "repair_data_mismatch",
    "repair_extra_in_target",
    "repair_min_age_seconds",
    "repair_max_per_run",
    "repair_max_per_hour",
)


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
    cdc_lag_budget_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="How long the CDC pipeline may take to copy a write (seconds); a difference "
        "whose source row is younger is in flight, not drift. Blank means "
        "RECONCILIATION_CDC_LAG_BUDGET_SECONDS.",
    )
    # -- auto-repair policy ---------------------------------------------------------------------
    repair_policy = models.CharField(
        max_length=10,
        choices=RepairPolicy.choices,
        default=RepairPolicy.OFF,
        db_default=RepairPolicy.OFF,
        help_text="Repair confirmed differences from Cassandra after each conclusive job.",
    )
    repair_missing_in_target = models.BooleanField(
        default=True, db_default=True, help_text="The policy may insert rows missing in PostgreSQL."
    )
    repair_data_mismatch = models.BooleanField(
        default=True, db_default=True, help_text="The policy may overwrite rows that differ."
    )
    repair_extra_in_target = models.BooleanField(
        default=False,
        db_default=False,
        help_text="The policy may delete rows that exist only in PostgreSQL (off by default).",
    )
    repair_min_age_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="A difference must be at least this old to be repaired (seconds). Blank "
        "means the table's CDC lag budget, or 10 minutes if the table sets none.",
    )
    repair_max_per_run = models.PositiveIntegerField(
        default=100,
        db_default=100,
        validators=[MinValueValidator(1)],
        help_text="Repairs one run may make (a run that reaches it alerts).",
    )
    repair_max_per_hour = models.PositiveIntegerField(
        default=1000,
        db_default=1000,
        validators=[MinValueValidator(1)],
        help_text="Repairs the policy may make in any hour, over all runs.",
    )
    source_max_rows_per_second = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Rows per second jobs may read from this Cassandra table, across all "
        "workers (blank or 0: no cap of its own). RECONCILIATION_SOURCE_MAX_ROWS_PER_SECOND "
        "caps all tables together as well.",
    )
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

    def clean(self) -> None:
        """The rules between fields (the admin form and the API both call this)."""
        super().clean()
        errors: dict[str, str] = {}
        if self.repair_policy != RepairPolicy.OFF and not self.repair_types:
            errors["repair_policy"] = (
                f"A repair policy of {self.repair_policy!r} needs at least one mismatch type "
                "it may repair: allow missing rows, differing rows or extra rows."
            )
        per_run, per_hour = self.repair_max_per_run, self.repair_max_per_hour
        if per_run is not None and per_hour is not None and per_run > per_hour:
            errors["repair_max_per_run"] = (
                f"Repairs per run ({per_run}) must not exceed repairs per hour ({per_hour})."
            )
        if errors:
            raise ValidationError(errors)

    @property
    def repair_types(self) -> list[str]:
        """The mismatch types the repair policy may fix."""
        allowed = (
            (MismatchType.MISSING_IN_POSTGRES, self.repair_missing_in_target),
            (MismatchType.DATA_MISMATCH, self.repair_data_mismatch),
            (MismatchType.MISSING_IN_CASSANDRA, self.repair_extra_in_target),
        )
        return [kind.value for kind, on in allowed if on]

    @property
    def key_columns(self) -> list[str]:
        return [*self.partition_key_columns, *self.clustering_columns]

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds.effective(self.warning_threshold, self.critical_threshold)

    @property
    def effective_warning_threshold(self) -> float:
        return self.thresholds.warning

    @property
    def effective_critical_threshold(self) -> float:
        return self.thresholds.critical

    @property
    def lag_budget_seconds(self) -> float:
        """The table's CDC lag budget: its own, else RECONCILIATION_CDC_LAG_BUDGET_SECONDS."""
        if self.cdc_lag_budget_seconds is not None:
            return float(self.cdc_lag_budget_seconds)
        return settings.reconciliation.cdc_lag_budget_seconds

    @property
    def repair_min_age(self) -> float:
        """A repair policy's minimum age (seconds): its own, else the table's own CDC lag
        budget, else 10 minutes."""
        if self.repair_min_age_seconds is not None:
            return float(self.repair_min_age_seconds)
        if self.cdc_lag_budget_seconds is not None:
            return float(self.cdc_lag_budget_seconds)
        return float(DEFAULT_REPAIR_MIN_AGE_SECONDS)

    def alert_level_for(self, drift_percentage: float | None) -> str:
        return self.thresholds.alert_level(drift_percentage)

    @property
    def spec(self) -> TableSpec:
        """The engine's plain view of this mapping (the engine knows no Django models)."""
        return TableSpec(
            name=self.name,
            cassandra_keyspace=self.cassandra_keyspace,
            cassandra_table=self.cassandra_table,
            postgres_schema=self.postgres_schema,
            postgres_table=self.postgres_table,
            partition_key=tuple(self.partition_key_columns),
            clustering=tuple(self.clustering_columns),
            timestamp_column=self.timestamp_column,
            excluded_columns=tuple(self.excluded_columns or ()),
        )
