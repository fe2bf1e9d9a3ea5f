"""Signal handlers of the reconciliation app (connected in ``ReconciliationConfig.ready``)."""

from __future__ import annotations

import logging
from typing import Any

from django.db import connections

from reconciliation.jobs.schedule import sync_schedule

logger = logging.getLogger(__name__)

BEAT_TABLES = {"django_celery_beat_periodictask", "django_celery_beat_intervalschedule"}


def sync_schedule_after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """Keep beat's PeriodicTasks in step with the settings after every ``migrate``."""
    # A partial migrate (e.g. `migrate reconciliation 0001`) may run before beat's tables exist.
    if not BEAT_TABLES <= set(connections[using].introspection.table_names()):
        logger.info("django_celery_beat is not migrated yet; the schedule is synced later")
        return
    state = sync_schedule(using=using)
    if kwargs.get("verbosity", 1) >= 2:
        print(
            f"  Synced the reconciliation schedule: every {state.interval_minutes} min, "
            f"{'enabled' if state.enabled else 'disabled'}; reaper every minute."
        )
