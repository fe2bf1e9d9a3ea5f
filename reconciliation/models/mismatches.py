"""The mismatch ledger: one standing difference per (table, primary key) across runs.

The lifecycle is decided here (``Mismatch.see``, ``MismatchQuerySet.record_findings`` /
``heal``, ``Mismatch.recheck``/``resolve``/``reopen``), with the per-job ``JobFinding``; the
list's trigger-kept totals are ``counts.MismatchCount``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.conf import settings as django_settings
from django.db import connection, models, transaction
from django.db.models import Case, F, Q, QuerySet, Value, When
from django.db.models.functions import Concat, Now
from django.utils import timezone
from psycopg import sql
from psycopg.types.json import Jsonb

from reconciliation.choices import (
    MismatchType,
    ResolutionStatus,
)
from reconciliation.engine import Difference
from reconciliation.models.jobs import ReconciliationJob

#: A difference that still stands: waiting for an operator, or knowingly ignored.
OPEN_STATUSES = (ResolutionStatus.PENDING, ResolutionStatus.IGNORED)
#: The statuses that hold a key's one open row (``one_open_mismatch_per_key``): the open
#: ones and IN_FLIGHT (a difference within the CDC lag budget: not drift, not closed).
KEY_HOLDING_STATUSES = (*OPEN_STATUSES, ResolutionStatus.IN_FLIGHT)
#: Closed by someone (or by a covering run); found again, the same object reopens.
RESOLVED_STATUSES = (
    ResolutionStatus.MANUAL_RESOLVED,
    ResolutionStatus.AUTO_RESOLVED,
    ResolutionStatus.AUTO_REPAIRED,
)


#: What a run (or a re-check) saw of one key that differs now: the engine's Difference.
Finding = Difference


def _note(notes: str, line: str) -> str:
    return f"{notes}\n\n{line}" if notes else line


def _from_micros(micros: int | None) -> dt.datetime | None:
    """A Cassandra write time (µs since the epoch) as a datetime; None when out of range."""
    if micros is None:
        return None
    try:
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)
    except OverflowError:  # USING TIMESTAMP accepts any bigint
        return None


class MismatchQuerySet(QuerySet["Mismatch"]):
    def open(self) -> MismatchQuerySet:
        return self.filter(resolution_status__in=OPEN_STATUSES)

    def record_findings(self, job: ReconciliationJob, findings: list[Finding]) -> int:
        """Apply one batch of a job's findings to the ledger, in a few queries.

        Per key: the open difference is refreshed (``Mismatch.see``); else the latest
        resolved one reopens; else a new PENDING one is added.  The rows are written with
        one ``INSERT … ON CONFLICT (mismatch_id) DO UPDATE`` and each key gets a
        ``JobFinding``.  Returns how many findings were applied.
        """
        if not findings:
            return 0
        now = timezone.now()
        by_key = {f.primary_key_value: f for f in findings}
        with transaction.atomic():
            known: dict[str, Mismatch] = {}
            # Open rows first, then the most recently seen resolved one (NULLs last).
            existing = (
                self.model.objects.select_for_update()
                .filter(table_name=job.table_name, primary_key_value__in=list(by_key))
                .order_by("primary_key_value", "-last_seen_at")
            )
            for row in existing:
                current = known.get(row.primary_key_value)
                if current is None or (
                    row.holds_key and not current.holds_key
                ):  # an open (or in-flight) row wins over a resolved one
                    known[row.primary_key_value] = row
            rows: list[Mismatch] = []
            for key, finding in by_key.items():
                mismatch = known.get(key)
                if mismatch is None:
                    mismatch = Mismatch(
                        job=job,
                        table_name=job.table_name,
                        primary_key_value=key,
                        detected_at=now,
                        first_seen_at=now,
                        times_seen=0,
                    )
                mismatch.see(finding, job, now)
                rows.append(mismatch)
            _upsert(rows, job, now)
        return len(rows)

    def heal(self, job: ReconciliationJob, keys: list[str] | None = None) -> int:
        """Close as AUTO_RESOLVED the open differences of ``job``'s table that ``job``
        covered (every key when ``keys`` is None) and did not find: it saw their rows
        equal.  Returns how many were closed."""
        note = (
            f"[{timezone.now():%Y-%m-%d %H:%M} UTC] Healed: {job.validation_strategy} job "
            f"{job.job_id} found the rows equal."
        )
        # In-flight ones too: a covering run that sees the rows equal settles them.
        rows = self.filter(
            table_name=job.table_name, resolution_status__in=KEY_HOLDING_STATUSES
        ).exclude(last_job=job)
        closed = 0
        for batch in [None] if keys is None else _batches(keys, 1000):
            selected = rows if batch is None else rows.filter(primary_key_value__in=batch)
            closed += selected.update(
                resolution_status=ResolutionStatus.AUTO_RESOLVED,
                resolved_at=timezone.now(),
                resolved_by=None,
                resolution_notes=Case(
                    When(resolution_notes="", then=Value(note)),
                    default=Concat(F("resolution_notes"), Value("\n\n" + note)),
                    output_field=models.TextField(),
                ),
            )
        return closed


def _upsert(rows: list[Mismatch], job: ReconciliationJob, now: Any) -> None:
    """Write the decided rows and their findings: COPY into a temporary table, then one
    ``INSERT … ON CONFLICT (mismatch_id) DO UPDATE`` and one ``INSERT`` of the findings.
    (About twice as fast as ``bulk_create`` for a thousand rows with JSON.)"""
    fields = list(Mismatch._meta.concrete_fields)
    column = {f.name: str(f.column) for f in fields}
    table = sql.Identifier(Mismatch._meta.db_table)
    batch = sql.Identifier(f"ledger_batch_{uuid.uuid4().hex}")
    names = sql.SQL(", ").join([sql.Identifier(column[f.name]) for f in fields])
    updates = sql.SQL(", ").join(
        [
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(column[n]))
            for n in _LEDGER_WRITE_FIELDS
        ]
    )
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's own cursor, for COPY
        raw.execute(
            sql.SQL("CREATE TEMPORARY TABLE {} (LIKE {}) ON COMMIT DROP").format(batch, table)
        )
        # Plain attribute values (psycopg adapts UUIDs, datetimes, text, numbers), JSON
        # wrapped as jsonb: Field.get_db_prep_save per value would double the cost.
        attnames = [(f.attname, isinstance(f, models.JSONField)) for f in fields]
        with raw.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(batch, names)) as copy:
            for row in rows:
                values = row.__dict__
                copy.write_row(
                    [
                        Jsonb(values[name])
                        if is_json and values[name] is not None
                        else values[name]
                        for name, is_json in attnames
                    ]
                )
        raw.execute(
            sql.SQL(
                "INSERT INTO {table} ({names}) SELECT {names} FROM {batch} "
                "ON CONFLICT ({pk}) DO UPDATE SET {updates}"
            ).format(
                table=table,
                names=names,
                batch=batch,
                pk=sql.Identifier(column["mismatch_id"]),
                updates=updates,
            )
        )
        raw.execute(
            sql.SQL(
                "INSERT INTO {findings} (job_id, mismatch_id, mismatch_type, found_at) "
                "SELECT %s, mismatch_id, mismatch_type, %s FROM {batch} ON CONFLICT DO NOTHING"
            ).format(findings=sql.Identifier(JobFinding._meta.db_table), batch=batch),
            [job.pk, now],
        )
        raw.execute(sql.SQL("DROP TABLE {}").format(batch))


def _batches(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


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

    def see(self, finding: Finding, job: ReconciliationJob | None, now: Any, by: str = "") -> str:
        """The difference was found (again) as ``finding``: decide its status, in memory.

        The one definition of the lifecycle (runs and re-checks both come here):

        * new or PENDING: refreshed (rows, checksums, type) and stays PENDING;
        * IGNORED: stays ignored while both checksums equal those stored when it was
          ignored (the rows are then not overwritten); otherwise reopens as PENDING with a
          note;
        * MANUAL_RESOLVED / AUTO_RESOLVED: reopens as PENDING (same object), marked
          ``reappeared_at``, with a note.

        A finding with ``recheck_after`` is *in flight* (its source row is younger than the
        CDC lag budget): where the rules above give PENDING it is IN_FLIGHT instead, until
        ``recheck_after``; an IN_FLIGHT row found as a plain difference becomes PENDING.
        ``recheck_after`` stays set on a row closed while in flight (it never was drift) and
        is cleared whenever the row becomes PENDING.

        Returns the outcome: "new", "seen", "still_ignored", "reopened" or "reappeared".
        """
        source = f"job {job.job_id}" if job is not None else (by or "a re-check")
        stamp = f"[{now:%Y-%m-%d %H:%M} UTC]"
        outcome = "seen"
        if self.times_seen == 0 or self._state.adding:
            outcome = "new"
        elif self.resolution_status == ResolutionStatus.IGNORED:
            if (finding.cassandra_checksum, finding.postgres_checksum) == (
                self.cassandra_checksum,
                self.postgres_checksum,
            ):
                outcome = "still_ignored"
            else:
                outcome = "reopened"
                self.resolution_notes = _note(
                    self.resolution_notes,
                    f"{stamp} Reopened: the rows changed since it was ignored ({source}).",
                )
        elif self.resolution_status in RESOLVED_STATUSES:
            outcome = "reappeared"
            self.reappeared_at = now
            self.resolution_notes = _note(
                self.resolution_notes,
                f"{stamp} Reappeared after resolution: found again by {source}.",
            )
        if outcome in {"reopened", "reappeared"}:
            self.resolution_status = ResolutionStatus.PENDING
            self.resolved_at = None
            self.resolved_by = None
        if outcome != "still_ignored":
            self.mismatch_type = finding.mismatch_type
            self.cassandra_checksum = finding.cassandra_checksum
            self.postgres_checksum = finding.postgres_checksum
            self.cassandra_data = finding.cassandra_data
            self.postgres_data = finding.postgres_data
            self.source_write_time = _from_micros(finding.source_write_time)
            self.source_ttl_seconds = finding.source_ttl
            if finding.recheck_after is not None:
                self.resolution_status = ResolutionStatus.IN_FLIGHT
                self.recheck_after = dt.datetime.fromtimestamp(finding.recheck_after, dt.UTC)
            elif self.resolution_status in (ResolutionStatus.PENDING, ResolutionStatus.IN_FLIGHT):
                self.resolution_status = ResolutionStatus.PENDING
                self.recheck_after = None
        self.times_seen = (self.times_seen or 0) + 1
        self.last_seen_at = now
        if job is not None:
            self.last_job = job
        return outcome

    def apply_recheck(self, finding: Finding | None, user: Any) -> str:
        """Act on this key as a re-check just read it (``finding``: its difference now, None
        when both stores agree; ``ledger.recheck`` reads it, so the model never calls back
        into the engine).

        Equal now: an open difference closes as AUTO_RESOLVED, resolved by ``user``
        ("closed"; a closed one stays closed).  Still different: the captured rows are
        refreshed through ``see`` (an IGNORED one stays ignored while its rows are as they
        were; a resolved one reopens) and the outcome is "still_different" when the
        checksums are as captured, else "changed".  Either way a note names ``user``.
        """
        who = getattr(user, "get_username", lambda: "")() or "unknown"
        now = timezone.now()
        stamp = f"[{now:%Y-%m-%d %H:%M} UTC]"
        with transaction.atomic():
            locked = Mismatch.objects.select_for_update().get(pk=self.pk)
            if finding is None:
                outcome = "closed"
                if locked.holds_key:
                    locked.resolution_status = ResolutionStatus.AUTO_RESOLVED
                    locked.resolved_at = now
                    locked.resolved_by = user if getattr(user, "is_authenticated", False) else None
                    locked.resolution_notes = _note(
                        locked.resolution_notes,
                        f"{stamp} Re-checked by {who}: the rows are equal now; closed.",
                    )
            else:
                same = (finding.cassandra_checksum, finding.postgres_checksum) == (
                    locked.cassandra_checksum,
                    locked.postgres_checksum,
                )
                locked.see(finding, None, now, by=f"a re-check by {who}")
                outcome = "still_different" if same else "changed"
                locked.resolution_notes = _note(
                    locked.resolution_notes,
                    f"{stamp} Re-checked by {who}: "
                    + ("still different." if same else "still different, the rows changed."),
                )
            locked.save()
        for name in (*_LEDGER_WRITE_FIELDS, "resolved_by_id"):
            setattr(self, name, getattr(locked, name))
        return outcome

    def resolve(self, user: Any, status: str, notes: str) -> None:
        """Close a PENDING mismatch as resolved or ignored, recording who, when and why.

        The transition is a conditional UPDATE, so when two operators resolve the same
        mismatch at once exactly one wins; the other gets ``AlreadyResolved`` naming the
        winner.  The API's resolve endpoint and the admin's actions both call this.
        """
        if status not in (*CLOSED_STATUSES, ResolutionStatus.AUTO_REPAIRED):
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
        who = getattr(user, "username", None) or "unknown"
        stamp = timezone.now().strftime("%Y-%m-%d %H:%M UTC")
        history = f"{self.resolution_notes}\n\n" if self.resolution_notes else ""
        self.resolution_notes = f"{history}[reopened by {who}, {stamp}] {notes}"
        reopenable = (*CLOSED_STATUSES, ResolutionStatus.AUTO_REPAIRED)
        updated = Mismatch.objects.filter(pk=self.pk, resolution_status__in=reopenable).update(
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

#: What ``MismatchQuerySet.record_findings`` writes back to an existing row.
_LEDGER_WRITE_FIELDS = (
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
