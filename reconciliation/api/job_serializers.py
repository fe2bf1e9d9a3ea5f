"""The jobs' JSON shapes (docs/reconciliation-guide.md, "API Endpoints"): a job as in the job
list, and a job with the mismatches it found (its details).  Both are built by
``reconciliation.presenters`` (``job_summary``, ``job_detail``), shared with the CLI's
``--json``; the declared fields describe them for the OpenAPI schema.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from reconciliation.api.repair_runs import RepairRunSerializer, RepairSummarySerializer
from reconciliation.choices import (
    JobPhase,
    JobStatus,
    JobType,
    MismatchType,
    RecheckRule,
    ResolutionStatus,
    ValidationStrategy,
)
from reconciliation.models import Mismatch, ReconciliationJob
from reconciliation.presenters import (
    JOB_EXTRA_FIELDS,
    JOB_FIELDS,
    MISMATCH_LEDGER_FIELDS,
    MISMATCH_SUMMARY_FIELDS,
    job_detail,
    job_summary,
)


class JobSerializer(serializers.ModelSerializer[ReconciliationJob]):
    """One reconciliation job, as in the job list."""

    job_type = serializers.ChoiceField(choices=JobType.choices, read_only=True)
    validation_strategy = serializers.ChoiceField(
        choices=ValidationStrategy.choices, read_only=True
    )
    status = serializers.ChoiceField(choices=JobStatus.choices, read_only=True)
    phase = serializers.ChoiceField(choices=JobPhase.choices, read_only=True)
    error_message = serializers.CharField(
        read_only=True, allow_null=True, help_text="Why the job failed (store and error)."
    )
    requested_by = serializers.CharField(
        read_only=True,
        allow_null=True,
        help_text='Who started the job: a username, "schedule" for a scheduled run, or null.',
    )
    progress = serializers.FloatField(
        read_only=True,
        min_value=0,
        max_value=100,
        help_text="How far the job got, in percent (0-100); 100 once COMPLETED.",
    )
    segments_total = serializers.IntegerField(
        read_only=True,
        min_value=0,
        help_text="How many token-range segments the job compares (0 for SAMPLE, which is "
        "not segmented, and until the job is planned).",
    )
    segments_done = serializers.IntegerField(
        read_only=True,
        min_value=0,
        help_text="How many of those segments are done; a resumed job redoes only the rest.",
    )
    schema_warnings = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="Columns on one side only (not compared), one sentence each.",
    )
    inconclusive = serializers.BooleanField(
        read_only=True,
        help_text="COMPLETED but examined no key (ROW_COUNT: no row): drift is null, no alert.",
    )
    window = serializers.JSONField(
        read_only=True,
        allow_null=True,
        help_text="TIMESTAMP_RANGE: the {from, to} window checked (default: the last "
        "RECONCILIATION_INTERVAL_MINUTES plus 5 minutes, up to now); null otherwise.",
    )
    transient_count = serializers.IntegerField(
        read_only=True,
        min_value=0,
        help_text="Differences that were equal when read again (writes the pipeline copied "
        "during the scan, or in flight and arrived): not in mismatch_count or drift.",
    )
    in_flight_count = serializers.IntegerField(
        read_only=True,
        min_value=0,
        help_text="Differences found in flight (source row younger than the CDC lag budget): "
        "not in mismatch_count or drift; each is re-checked once the budget has passed and "
        "then counted as transient, expired or a mismatch of this job.",
    )
    expired_count = serializers.IntegerField(
        read_only=True,
        min_value=0,
        help_text="Differences whose source row's TTL ran out before they could be "
        "re-checked: not differences.",
    )
    recheck_rule = serializers.ChoiceField(
        choices=RecheckRule.choices,
        read_only=True,
        allow_null=True,
        help_text="How drift was told from differences in flight: WRITE_TIME (source write "
        "times against the CDC lag budget), FIXED_DELAY (re-read after "
        "RECONCILIATION_RECHECK_DELAY_SECONDS: no readable write times, or no budget), NONE.",
    )
    lag_budget_seconds = serializers.FloatField(
        read_only=True,
        allow_null=True,
        help_text="The CDC lag budget the job judged with (WRITE_TIME only), in seconds.",
    )
    source_rows_per_second = serializers.FloatField(
        read_only=True,
        allow_null=True,
        help_text="The rate at which the job read Cassandra (rows/s): its source rows over "
        "the wall time of its reading, across every worker; held under "
        "RECONCILIATION_SOURCE_MAX_ROWS_PER_SECOND and the table's own cap. Null until done.",
    )

    repair_summary = RepairSummarySerializer(
        read_only=True,
        allow_null=True,
        help_text="What the table's repair policy did after this job; null when none ran.",
    )
    repair_run = RepairRunSerializer(read_only=True, allow_null=True)

    class Meta:
        model = ReconciliationJob
        fields: tuple[str, ...] = (*JOB_FIELDS, *JOB_EXTRA_FIELDS)
        read_only_fields: tuple[str, ...] = (*JOB_FIELDS, *JOB_EXTRA_FIELDS)

    def to_representation(self, job: ReconciliationJob) -> dict[str, Any]:
        # One definition of a job's JSON, shared with the CLI (reconciliation.presenters).
        return job_summary(job)


class MismatchSummarySerializer(serializers.ModelSerializer[Mismatch]):
    """A mismatch as embedded in a job's details."""

    mismatch_type = serializers.ChoiceField(choices=MismatchType.choices, read_only=True)
    resolution_status = serializers.ChoiceField(choices=ResolutionStatus.choices, read_only=True)

    last_job_id = serializers.UUIDField(read_only=True, allow_null=True)

    class Meta:
        model = Mismatch
        fields = (*MISMATCH_SUMMARY_FIELDS, *MISMATCH_LEDGER_FIELDS)
        read_only_fields = fields


class JobDetailSerializer(JobSerializer):
    """A job with the mismatches it found (at most JOB_DETAIL_MISMATCH_LIMIT, newest first).

    The JSON is ``reconciliation.presenters.job_detail``'s, so the API and the CLI's --json
    agree by construction; the declared fields describe it for the OpenAPI schema.
    """

    mismatches = serializers.SerializerMethodField()

    class Meta(JobSerializer.Meta):
        fields = (*JobSerializer.Meta.fields, "mismatches")
        read_only_fields = fields

    @extend_schema_field(MismatchSummarySerializer(many=True))
    def get_mismatches(self, job: ReconciliationJob) -> list[dict[str, Any]]:
        return job_detail(job)["mismatches"]  # type: ignore[no-any-return]

    def to_representation(self, job: ReconciliationJob) -> dict[str, Any]:
        return job_detail(job)
