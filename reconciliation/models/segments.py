"""The durable pieces of a distributed job (``reconciliation/jobs/``).

A CHECKSUM, TIMESTAMP_RANGE or ROW_COUNT job is split into segments, each run by its own
Celery task on whichever worker takes it:

* STAGE segments read one block range of the target table (``ctid`` ranges) and write its
  rows' keys and row hashes, keyed by Murmur3 token, into the job's staging table in the
  app database;
* COMPARE segments read one token range of the Cassandra table and merge it with the staged
  target rows of the same range.

A segment records where it ran, how many rows it read and how many differences it found;
its differences (``SegmentDifference``) are replaced in the same transaction that marks it
DONE, so a redelivered or retried segment never writes a row twice.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q

from reconciliation.choices import SegmentKind, SegmentStatus
from reconciliation.models.jobs import ReconciliationJob


class JobSegment(models.Model):
    job = models.ForeignKey(ReconciliationJob, on_delete=models.CASCADE, related_name="segments")
    kind = models.CharField(max_length=8, choices=SegmentKind.choices)
    number = models.PositiveIntegerField(help_text="Order within the job and kind.")
    # COMPARE: the token range (start, end]; STAGE: the target's blocks [start, end), with
    # no end for the last one (rows written past the planned size are staged too).
    range_start = models.BigIntegerField()
    range_end = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(
        max_length=8, choices=SegmentStatus.choices, default=SegmentStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True, default="", help_text="host:pid")
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cassandra_rows = models.BigIntegerField(default=0)
    postgres_rows = models.BigIntegerField(default=0)
    keys = models.BigIntegerField(default=0)
    difference_count = models.BigIntegerField(default=0)
    error_message = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["job_id", "kind", "number"]
        constraints = [
            models.UniqueConstraint(fields=["job", "kind", "number"], name="one_segment_per_slot"),
        ]
        indexes = [models.Index(fields=["job", "status"], name="segment_job_status")]

    def __str__(self) -> str:
        return f"{self.kind} {self.number} of {self.job_id}"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def range_label(self) -> str:
        if self.kind == SegmentKind.STAGE:
            end = "end" if self.range_end is None else str(self.range_end)
            return f"blocks [{self.range_start}, {end})"
        return f"tokens ({self.range_start}, {self.range_end}]"


class SegmentDifference(models.Model):
    """One key a COMPARE segment found different, as the merge saw it (marshalled compare
    forms): the finalizer re-checks and reports it."""

    segment = models.ForeignKey(JobSegment, on_delete=models.CASCADE, related_name="differences")
    key = models.BinaryField()
    cassandra_row = models.BinaryField(null=True)
    # The row hashes of the target's rows for this key (marshalled tuple; empty: none).
    target_rows = models.BinaryField()
    # The source row's write time (µs since the epoch, its latest regular cell's WRITETIME)
    # and when it expires (epoch seconds, from its TTL), as the segment read them; null
    # without a source row, a readable write time, or a TTL on every cell.
    source_write_time = models.BigIntegerField(null=True)
    source_expires_at = models.FloatField(null=True)

    class Meta:
        indexes = [models.Index(fields=["segment"], name="segment_difference_segment")]

    def __str__(self) -> str:
        return f"difference of {self.segment}"


def segment_counts(job: ReconciliationJob) -> dict[str, Any]:
    """``segments_total`` and ``segments_done`` (COMPARE segments) of a job."""
    rows = job.segments.filter(kind=SegmentKind.COMPARE).aggregate(
        total=models.Count("id"), done=models.Count("id", filter=Q(status=SegmentStatus.DONE))
    )
    return {"segments_total": rows["total"], "segments_done": rows["done"]}
