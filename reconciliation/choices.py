"""Every status and enumeration of the reconciliation app, as the guide names them."""

from __future__ import annotations

from django.db import models


class JobType(models.TextChoices):
    HOURLY_SCHEDULED = "HOURLY_SCHEDULED", "Hourly scheduled"
    MANUAL = "MANUAL", "Manual"


class ValidationStrategy(models.TextChoices):
    ROW_COUNT = "ROW_COUNT", "Row count"
    CHECKSUM = "CHECKSUM", "Checksum (every row)"
    TIMESTAMP_RANGE = "TIMESTAMP_RANGE", "Timestamp range"
    SAMPLE = "SAMPLE", "Random sample"


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
    MISSING_IN_POSTGRES = "MISSING_IN_POSTGRES", "Missing in PostgreSQL"
    MISSING_IN_CASSANDRA = "MISSING_IN_CASSANDRA", "Missing in Cassandra"
    DATA_MISMATCH = "DATA_MISMATCH", "Data mismatch"


class ResolutionStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    MANUAL_RESOLVED = "MANUAL_RESOLVED", "Resolved manually"
    AUTO_RESOLVED = "AUTO_RESOLVED", "Resolved automatically (repair)"
    IGNORED = "IGNORED", "Ignored"


class SegmentKind(models.TextChoices):
    """The two kinds of work a distributed job is split into."""

    STAGE = "STAGE", "Stage target rows (a block range of the target table)"
    COMPARE = "COMPARE", "Compare a token range"


class SegmentStatus(models.TextChoices):
    PENDING = "PENDING", "Pending (not sent)"
    QUEUED = "QUEUED", "Queued (sent to the broker)"
    RUNNING = "RUNNING", "Running"
    DONE = "DONE", "Done"
