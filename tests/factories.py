"""factory_boy factories for the reconciliation models."""

from __future__ import annotations

import datetime as dt

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from reconciliation.choices import (
    JobPhase,
    JobStatus,
    JobType,
    MismatchType,
    ResolutionStatus,
    ValidationStrategy,
)
from reconciliation.models import Mismatch, ReconciliationJob, TableMapping


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("secret-password")


class TableMappingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TableMapping
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"table_{n}")
    cassandra_keyspace = "warehouse"
    cassandra_table = factory.SelfAttribute("name")
    postgres_schema = "public"
    postgres_table = factory.SelfAttribute("name")
    scheduled_strategy = ValidationStrategy.ROW_COUNT


class JobFactory(factory.django.DjangoModelFactory):
    """A finished (COMPLETED) job by default; pass status=RUNNING for a running one."""

    class Meta:
        model = ReconciliationJob

    table_name = factory.Sequence(lambda n: f"table_{n}")
    job_type = JobType.HOURLY_SCHEDULED
    validation_strategy = ValidationStrategy.ROW_COUNT
    status = JobStatus.COMPLETED
    started_at = factory.LazyFunction(timezone.now)
    heartbeat_at = factory.SelfAttribute("started_at")
    completed_at = factory.LazyAttribute(
        lambda job: (
            None if job.status == JobStatus.RUNNING else job.started_at + dt.timedelta(seconds=45)
        )
    )
    phase = factory.LazyAttribute(
        lambda job: JobPhase.QUEUED if job.status == JobStatus.RUNNING else JobPhase.DONE
    )
    cassandra_row_count = 1_000_000
    postgres_row_count = 995_000
    mismatch_count = 5_000
    drift_percentage = 0.5
    alert_fired = False


class MismatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Mismatch

    job = factory.SubFactory(JobFactory)
    table_name = factory.SelfAttribute("job.table_name")
    primary_key_value = factory.Sequence(lambda n: f"user-{n}")
    mismatch_type = MismatchType.DATA_MISMATCH
    cassandra_checksum = "a1b2c3d4" * 8
    postgres_checksum = "d4c3b2a1" * 8
    cassandra_data = factory.LazyAttribute(
        lambda m: {"id": m.primary_key_value, "email": "old@example.com"}
    )
    postgres_data = factory.LazyAttribute(
        lambda m: {"id": m.primary_key_value, "email": "new@example.com"}
    )
    resolution_status = ResolutionStatus.PENDING
    detected_at = factory.LazyFunction(timezone.now)
    # The ledger's history: a difference made with a past detected_at was seen then.
    first_seen_at = factory.SelfAttribute("detected_at")
    last_seen_at = factory.SelfAttribute("detected_at")
