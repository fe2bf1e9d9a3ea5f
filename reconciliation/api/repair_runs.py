"""The job JSON's repair policy fields: ``repair_summary`` (what the run did, once done)
and ``repair_run`` (where the run is while it works: ``reconciliation.repair.runs``)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from reconciliation.choices import (
    MismatchType,
    RepairCap,
    RepairPolicy,
    RepairRunState,
    RepairRunStatus,
)


class RepairSummarySerializer(serializers.Serializer[dict[str, Any]]):
    """What a table's repair policy did after a job (``reconciliation.repair.policy``)."""

    policy = serializers.ChoiceField(choices=RepairPolicy.choices)
    dry_run = serializers.BooleanField(help_text="True: nothing was written to either store.")
    status = serializers.ChoiceField(
        choices=RepairRunStatus.choices,
        help_text="done; kill_switch (RECONCILIATION_AUTO_REPAIR_ENABLED=false: nothing "
        "done); busy (another run of this table's policy was in progress); stopped (the "
        "table's policy was switched off mid-run); failed (a store went away mid-run: what "
        "was repaired stays repaired, see error).",
    )
    types = serializers.ListField(
        child=serializers.ChoiceField(choices=MismatchType.choices),
        help_text="The mismatch types the policy may repair.",
    )
    min_age_seconds = serializers.FloatField()
    max_per_run = serializers.IntegerField()
    max_per_hour = serializers.IntegerField()
    eligible = serializers.IntegerField(
        help_text="Open differences of an allowed type and old enough."
    )
    repaired = serializers.IntegerField(help_text="Repaired from Cassandra (AUTO_REPAIRED).")
    would_repair = serializers.IntegerField(help_text="dry_run: what it would have repaired.")
    skipped = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Eligible but left alone, by reason: equal_now (closed, both stores agree), "
        "changed_since_detection (left open for the next run), no_longer_open.",
    )
    failed = serializers.IntegerField(help_text="Repairs that failed (still open).")
    deferred = serializers.IntegerField(help_text="Eligible, left for later by a cap.")
    not_eligible = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Open differences not eligible, by reason (type_not_allowed, too_young).",
    )
    capped = serializers.ChoiceField(
        choices=RepairCap.choices,
        allow_null=True,
        help_text="The cap the run stopped at, or null.",
    )
    error = serializers.CharField(required=False, help_text="status failed: why.")
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField()


class RepairRunSerializer(serializers.Serializer[dict[str, Any]]):
    """The run of the table's repair policy after a job: while it works and once done."""

    status = serializers.ChoiceField(
        choices=RepairRunState.choices,
        help_text="running; interrupted (no progress for longer than the broker's "
        "visibility timeout, CELERY_VISIBILITY_TIMEOUT_SECONDS: its worker died; the broker "
        "gives it to the next worker once that long has passed since its delivery, and it "
        "resumes where it stopped); done (its sums are in repair_summary).",
    )
    made = serializers.IntegerField(
        min_value=0, help_text="Differences acted on so far (repaired, skipped or failed)."
    )
    total = serializers.IntegerField(
        min_value=0,
        help_text="Differences the run works through: those acted on plus those eligible "
        "when it (last) started; a cap leaves the rest for later.",
    )
    repaired = serializers.IntegerField(min_value=0, help_text="Of made: repaired.")
    started_at = serializers.DateTimeField()
    resumed_at = serializers.DateTimeField(
        allow_null=True, help_text="When it was last resumed after a lost delivery; or null."
    )
    last_progress_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    deliveries = serializers.IntegerField(
        min_value=1, help_text="How many times a worker started it (1 + resumptions)."
    )
    worker = serializers.CharField(help_text="The host and process of its last delivery.")
    abandoned_audit_entries = serializers.IntegerField(
        min_value=0,
        help_text="Repair attempts lost with a dead worker, closed in the audit log as "
        "ABANDONED (their differences were read again and closed or repaired anew).",
    )
