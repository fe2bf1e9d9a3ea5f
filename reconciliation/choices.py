"""Every status and enumeration of the reconciliation app, with its label; the names the
engine and forensics share are ``reconciliation.vocabulary``'s."""

from __future__ import annotations

from django.db import models

from reconciliation import vocabulary as names


class JobType(models.TextChoices):
    HOURLY_SCHEDULED = "HOURLY_SCHEDULED", "Hourly scheduled"
    MANUAL = "MANUAL", "Manual"


class ValidationStrategy(models.TextChoices):
    ROW_COUNT = names.ROW_COUNT, "Row count"
    CHECKSUM = names.CHECKSUM, "Checksum (every row)"
    TIMESTAMP_RANGE = names.TIMESTAMP_RANGE, "Timestamp range"
    SAMPLE = names.SAMPLE, "Random sample"


class JobStatus(models.TextChoices):
    RUNNING = "RUNNING", "Running"
    COMPLETED = "COMPLETED", "Completed"
    FAILED = "FAILED", "Failed"


class JobPhase(models.TextChoices):
    """Where a job is within its status: RUNNING jobs wait (QUEUED) or work; the phase a
    FAILED job keeps says where it stopped."""

    QUEUED = "QUEUED", "Queued (waiting for a job slot)"
    READING = "READING", "Reading both stores"
    RECHECKING = "RECHECKING", "Re-checking differences"
    WRITING = "WRITING", "Writing results"
    DONE = "DONE", "Done"


class AlertLevel(models.TextChoices):
    NONE = "NONE", "None"
    WARNING = "WARNING", "Warning"
    CRITICAL = "CRITICAL", "Critical"


class MismatchType(models.TextChoices):
    MISSING_IN_POSTGRES = names.MISSING_IN_POSTGRES, "Missing in PostgreSQL"
    MISSING_IN_CASSANDRA = names.MISSING_IN_CASSANDRA, "Missing in Cassandra"
    DATA_MISMATCH = names.DATA_MISMATCH, "Data mismatch"


class ResolutionStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    MANUAL_RESOLVED = "MANUAL_RESOLVED", "Resolved manually"
    AUTO_RESOLVED = "AUTO_RESOLVED", "Resolved automatically (repair)"
    IGNORED = "IGNORED", "Ignored"
    # Found while its source row was younger than the table's CDC lag budget: not drift
    # (yet); re-checked once the budget has passed.
    IN_FLIGHT = names.IN_FLIGHT, "In flight (within the CDC lag budget)"
    # Repaired from Cassandra by the table's repair policy (not by an operator).
    AUTO_REPAIRED = "AUTO_REPAIRED", "Repaired by policy"


class Actor(models.TextChoices):
    """Who moves a difference between statuses (the ledger's transition table)."""

    RUN = "run", "A reconciliation run"
    RECHECK = "recheck", "A re-check (in flight, or asked for by an operator)"
    OPERATOR = "operator", "An operator"
    POLICY = "policy", "A table's repair policy"


class RepairPolicy(models.TextChoices):
    """A table's auto-repair policy."""

    OFF = "off", "Off"
    DRY_RUN = "dry_run", "Dry run (record what it would do, write nothing)"
    ON = "on", "On"


class RecheckRule(models.TextChoices):
    """How a job told drift from differences still in flight."""

    WRITE_TIME = names.WRITE_TIME, "Cassandra write times against the CDC lag budget"
    FIXED_DELAY = names.FIXED_DELAY, "A fixed re-check delay (no readable write times)"
    NONE = names.NO_RECHECK, "No re-check"


class SegmentKind(models.TextChoices):
    """The two kinds of work a distributed job is split into."""

    STAGE = "STAGE", "Stage target rows (a block range of the target table)"
    COMPARE = "COMPARE", "Compare a token range"


class SegmentStatus(models.TextChoices):
    PENDING = "PENDING", "Pending (not sent)"
    QUEUED = "QUEUED", "Queued (sent to the broker)"
    RUNNING = "RUNNING", "Running"
    DONE = "DONE", "Done"


class AutoRepairResult(models.TextChoices):
    """What the policy did with one eligible difference."""

    REPAIRED = "repaired", "Repaired from Cassandra"
    WOULD_REPAIR = "would_repair", "Would be repaired (dry run)"
    SKIPPED = "skipped", "Skipped (see the reason)"
    FAILED = "failed", "Repair failed (still open)"


class NotEligible(models.TextChoices):
    """Why an open difference was not for the policy to act on (yet)."""

    TYPE_NOT_ALLOWED = "type_not_allowed", "Its type is not one the policy may fix"
    TOO_YOUNG = "too_young", "Younger than the policy's minimum age"


class SkipReason(models.TextChoices):
    """Why an eligible difference was left open."""

    EQUAL_NOW = "equal_now", "Both stores agree now (closed, nothing written)"
    CHANGED = "changed_since_detection", "A row changed since detection (left for the next run)"
    GONE = "no_longer_open", "Resolved by someone else meanwhile"


class RepairRunStatus(models.TextChoices):
    """How a run of a table's repair policy ended (its summary's ``status``)."""

    DONE = "done", "Done"
    KILL_SWITCH = "kill_switch", "Switched off (RECONCILIATION_AUTO_REPAIR_ENABLED=false)"
    BUSY = "busy", "Not run: another run of the table's policy was in progress"
    STOPPED = "stopped", "Stopped: the table's policy was switched off mid-run"
    FAILED = "failed", "Stopped: a store went away mid-run"


class RepairRunState(models.TextChoices):
    """Where a run of a table's repair policy is, as its job shows it (``repair_run``)."""

    RUNNING = "running", "Running"
    INTERRUPTED = "interrupted", "Interrupted: no progress for longer than the visibility timeout"
    DONE = "done", "Done"


class RepairCap(models.TextChoices):
    """The cap a repair policy run stopped at."""

    PER_RUN = "per_run", "Repairs per run"
    PER_HOUR = "per_hour", "Repairs per hour"
