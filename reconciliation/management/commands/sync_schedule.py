"""manage.py sync_schedule: make beat's periodic tasks match the RECONCILIATION_* settings."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from reconciliation.jobs.schedule import REAPER_TASK_NAME, SCHEDULE_TASK_NAME, sync_schedule


class Command(BaseCommand):
    help = (
        "Create or update the scheduled-reconciliation and reaper periodic tasks "
        "(django-celery-beat) from RECONCILIATION_INTERVAL_MINUTES and RECONCILIATION_ENABLED. "
        "Idempotent; `make run` calls it at start-up."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--database", default="default", help="Database alias.")

    def handle(self, *args: Any, **options: Any) -> None:
        state = sync_schedule(using=options["database"])
        status = "enabled" if state.enabled else "disabled (RECONCILIATION_ENABLED=false)"
        self.stdout.write(
            self.style.SUCCESS(
                f"{SCHEDULE_TASK_NAME!r}: every {state.interval_minutes} min, {status}; "
                f"{REAPER_TASK_NAME!r}: every minute, enabled."
            )
        )
