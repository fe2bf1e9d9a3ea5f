"""The Celery application: Redis broker, settings from Django (CELERY_* names)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdcrecon.settings")

app = Celery("cdcrecon")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
