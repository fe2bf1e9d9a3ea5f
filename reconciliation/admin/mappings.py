"""The table mapping admin: register tables (keys discovered on save), reconcile now."""

from __future__ import annotations

from typing import Any

from cassandra import DriverException
from cassandra.cluster import NoHostAvailable
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.html import format_html
from django.utils.safestring import SafeString

from cdcrecon.conf import settings
from reconciliation import arrivals
from reconciliation.admin.common import (
    JobOptionsForm,
    job_options_page,
    job_url,
    link,
    mismatch_list_url,
    start_jobs,
)
from reconciliation.admin.overview import overview_view
from reconciliation.admin.views import badge, drift_badge
from reconciliation.choices import JobStatus, ResolutionStatus
from reconciliation.connections import StoreUnavailable, cassandra_session, target_connection
from reconciliation.engine.identifiers import UnsafeIdentifier
from reconciliation.models import (
    Mismatch,
    ReconciliationJob,
    TableMapping,
)
from reconciliation.models.mappings import REPAIR_POLICY_FIELDS, Thresholds
from reconciliation.registry import TableNotFound, discover_key_columns


class ColumnListField(forms.Field):
    """A JSON list of names edited as comma-separated text ("_cdc_*, internal_note")."""

    widget = forms.TextInput(attrs={"size": 60})

    def prepare_value(self, value: Any) -> str:
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return str(value or "")

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, list):
            return [str(v) for v in value]
        return [part.strip() for part in str(value or "").split(",") if part.strip()]


#: Fields with a model default that a form post may leave out (kept as they are).
DEFAULTED_FIELDS = ("repair_policy", "repair_max_per_run", "repair_max_per_hour")


class TableMappingForm(forms.ModelForm):
    excluded_columns = ColumnListField(
        required=False,
        help_text="Comma-separated column names or shell patterns left out of comparison "
        "and repair, e.g. _cdc_*",
    )

    class Meta:
        model = TableMapping
        fields = [
            "name",
            "cassandra_keyspace",
            "cassandra_table",
            "postgres_schema",
            "postgres_table",
            "timestamp_column",
            "excluded_columns",
            "warning_threshold",
            "critical_threshold",
            "cdc_lag_budget_seconds",
            "scheduled_strategy",
            "enabled",
            *REPAIR_POLICY_FIELDS,
            "source_max_rows_per_second",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.instance.pk:
            self.fields["cassandra_keyspace"].initial = settings.cassandra.keyspace
            self.fields["postgres_schema"].initial = settings.target.schema
        self.discovered: tuple[list[str], list[str]] | None = None
        for name in DEFAULTED_FIELDS:  # left out of a post: the model's default
            self.fields[name].required = False

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        for name in DEFAULTED_FIELDS:
            if data.get(name) in (None, ""):
                data[name] = getattr(self.instance, name)
        keyspace, table = data.get("cassandra_keyspace"), data.get("cassandra_table")
        warning, critical = data.get("warning_threshold"), data.get("critical_threshold")
        effective = Thresholds.effective(warning, critical)
        effective_warning, effective_critical = effective.warning, effective.critical
        if effective_warning > effective_critical:
            self.add_error(
                "warning_threshold",
                f"The warning threshold ({effective_warning:g}%) must not exceed the critical "
                f"threshold ({effective_critical:g}%).",
            )
        if not keyspace or not table:
            return data
        instance = self.instance
        moved = (keyspace, table) != (instance.cassandra_keyspace, instance.cassandra_table)
        if instance.pk and not moved and instance.partition_key_columns:
            return data
        try:
            self.discovered = discover_key_columns(cassandra_session(), keyspace, table)
        except StoreUnavailable as exc:
            raise ValidationError(
                f"Cannot discover the key columns: {exc}. Nothing was saved; try again when "
                "Cassandra is reachable."
            ) from exc
        except (TableNotFound, UnsafeIdentifier) as exc:
            self.add_error("cassandra_table", f"{exc} Check the keyspace and table names.")
        except (DriverException, NoHostAvailable) as exc:
            raise ValidationError(
                f"Cannot discover the key columns: Cassandra failed: {exc}"
            ) from exc
        return data

    def save(self, commit: bool = True) -> TableMapping:
        mapping: TableMapping = super().save(commit=False)
        if self.discovered is not None:
            mapping.partition_key_columns, mapping.clustering_columns = self.discovered
        if commit:
            mapping.save()
        return mapping


@admin.register(TableMapping)
class TableMappingAdmin(admin.ModelAdmin):
    form = TableMappingForm
    # The signal columns (latest job with its drift, open mismatches) first: they stay on
    # screen at 1366 px; the mapping's details follow.
    list_display = [
        "name",
        "last_job",
        "open_mismatches_link",
        "thresholds",
        "scheduled_strategy",
        "enabled",
        "cassandra",
        "postgres",
        "key",
    ]
    list_filter = ["enabled", "scheduled_strategy"]
    search_fields = ["name", "cassandra_table", "postgres_table"]
    readonly_fields = [
        "partition_key_columns",
        "clustering_columns",
        "arrival_last_day",
        "created_at",
        "updated_at",
    ]
    actions = ["reconcile_now"]
    fieldsets = [
        (None, {"fields": ["name", "enabled", "scheduled_strategy"]}),
        ("Source (Cassandra)", {"fields": ["cassandra_keyspace", "cassandra_table"]}),
        ("Target (PostgreSQL)", {"fields": ["postgres_schema", "postgres_table"]}),
        (
            "Keys (discovered from Cassandra's system_schema on save)",
            {"fields": ["partition_key_columns", "clustering_columns"]},
        ),
        (
            "Comparison",
            {
                "fields": [
                    "timestamp_column",
                    "excluded_columns",
                    "warning_threshold",
                    "critical_threshold",
                    "cdc_lag_budget_seconds",
                    "arrival_last_day",
                ]
            },
        ),
        (
            "Repair policy (after each conclusive job; RECONCILIATION_AUTO_REPAIR_ENABLED "
            "switches every policy off)",
            {"fields": list(REPAIR_POLICY_FIELDS)},
        ),
        ("Source read-rate cap", {"fields": ["source_max_rows_per_second"]}),
        ("History", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def has_trigger_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("reconciliation.add_reconciliationjob")

    def get_queryset(self, request: HttpRequest) -> QuerySet[TableMapping]:
        latest = ReconciliationJob.objects.filter(table_name=OuterRef("name")).order_by(
            "-started_at"
        )
        open_count = (
            Mismatch.objects.filter(
                table_name=OuterRef("name"), resolution_status=ResolutionStatus.PENDING
            )
            .order_by()
            .values("table_name")
            .annotate(n=Count("mismatch_id"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                last_job_id=Subquery(latest.values("job_id")[:1]),
                last_job_status=Subquery(latest.values("status")[:1]),
                last_job_drift=Subquery(latest.values("drift_percentage")[:1]),
                open_mismatches=Coalesce(Subquery(open_count), 0),
            )
        )

    def get_urls(self) -> list[URLPattern]:
        overview = path(
            "overview/",
            self.admin_site.admin_view(self.overview),
            name="reconciliation_overview",
        )
        return [overview, *super().get_urls()]

    def overview(self, request: HttpRequest) -> TemplateResponse:
        if not request.user.has_perm("reconciliation.view_reconciliationjob"):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        return overview_view(
            request,
            {**self.admin_site.each_context(request), "opts": self.model._meta},
        )

    def save_model(self, request: HttpRequest, obj: TableMapping, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        problem = _target_table_problem(obj)
        if problem:
            self.message_user(request, problem, messages.WARNING)

    @admin.display(description="Cassandra")
    def cassandra(self, obj: TableMapping) -> str:
        return f"{obj.cassandra_keyspace}.{obj.cassandra_table}"

    @admin.display(description="PostgreSQL")
    def postgres(self, obj: TableMapping) -> str:
        return f"{obj.postgres_schema}.{obj.postgres_table}"

    @admin.display(description="key")
    def key(self, obj: TableMapping) -> str:
        if not obj.partition_key_columns:
            return "(not discovered yet)"
        partition = ", ".join(obj.partition_key_columns)
        clustering = ", ".join(obj.clustering_columns)
        return f"(({partition}){', ' + clustering if clustering else ''})"

    @admin.display(description="warn / crit")
    def thresholds(self, obj: TableMapping) -> str:
        text = f"{obj.effective_warning_threshold:g}% / {obj.effective_critical_threshold:g}%"
        defaults = obj.warning_threshold is None and obj.critical_threshold is None
        return f"{text} (default)" if defaults else text

    @admin.display(description="arrivals (last 24 h)")
    def arrival_last_day(self, obj: TableMapping) -> str:
        if not obj.pk:
            return "-"
        return arrivals.describe(
            arrivals.last_day([obj.name]).get(obj.name, arrivals.ArrivalStats())
        )

    @admin.display(description="last job")
    def last_job(self, obj: TableMapping) -> SafeString | str:
        job_id = getattr(obj, "last_job_id", None)
        if job_id is None:
            return "never run"
        status = obj.last_job_status  # type: ignore[attr-defined]
        return format_html(
            '<a href="{}">{}</a> {}',
            job_url(job_id),
            badge(status, JobStatus(status).label),
            drift_badge(
                obj.last_job_drift,  # type: ignore[attr-defined]
                obj.effective_warning_threshold,
                obj.effective_critical_threshold,
            ),
        )

    @admin.display(description="open mismatches", ordering="open_mismatches")
    def open_mismatches_link(self, obj: TableMapping) -> SafeString | str:
        count = getattr(obj, "open_mismatches", 0)
        if not count:
            return "0"
        return link(
            mismatch_list_url(table=obj.name, resolution_status__exact=ResolutionStatus.PENDING),
            f"{count:,}",
        )

    @admin.action(description="Reconcile now…", permissions=["trigger"])
    def reconcile_now(
        self, request: HttpRequest, queryset: QuerySet[TableMapping]
    ) -> TemplateResponse | None:
        if "apply" in request.POST:
            form = JobOptionsForm(request.POST)
            if form.is_valid():
                defaults = {mapping.name: mapping.scheduled_strategy for mapping in queryset}
                start_jobs(self, request, form, defaults)
                return None
        else:
            form = JobOptionsForm()
        mappings = list(queryset)
        return job_options_page(
            self,
            request,
            form,
            title="Reconcile now",
            intro="Start one job now for each of these tables:",
            targets=[
                f"{m.name} (scheduled strategy: {m.get_scheduled_strategy_display()})"
                for m in mappings
            ],
        )


def _target_table_problem(mapping: TableMapping) -> str | None:
    """Why the mapped PostgreSQL table cannot be used yet, or None (a warning, not an error)."""
    name = f"{mapping.postgres_schema}.{mapping.postgres_table}"
    try:
        with target_connection() as conn:
            found = conn.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
                "AND table_name = %s",
                (mapping.postgres_schema, mapping.postgres_table),
            ).fetchone()
    except StoreUnavailable as exc:
        return f"Saved, but the target table {name} could not be checked: {exc}"
    if found is None:
        return f"Saved, but the PostgreSQL table {name} does not exist yet: jobs will fail."
    return None
