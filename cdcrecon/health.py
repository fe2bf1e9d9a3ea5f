"""Liveness (/healthz) and readiness (/readyz: every store and the broker reachable).

The store checks are the ones a job makes before it reads (``reconciliation.connections``):
a broken Cassandra session is rebuilt once and probed again, a dead app-database connection
is replaced, so ``/readyz`` and the workers never disagree about what is up.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings as django_settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from cdcrecon.celery import app as celery_app
from reconciliation.connections import cassandra_health, ensure_app_database, target_health


def _check_app_database() -> str:
    ensure_app_database()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _check_broker() -> str:
    with celery_app.connection_for_write(url=django_settings.CELERY_BROKER_URL) as conn:
        conn.ensure_connection(max_retries=1, timeout=3)
    return "ok"


CHECKS: dict[str, Callable[[], str]] = {
    "cassandra": cassandra_health,
    "postgres": _check_app_database,
    "target_postgres": target_health,
    "broker": _check_broker,
}


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    results: dict[str, dict[str, str]] = {}
    for name, check in CHECKS.items():
        try:
            results[name] = {"status": "up", "detail": check()}
        except Exception as exc:  # report every failure, whatever its type
            results[name] = {"status": "down", "detail": f"{type(exc).__name__}: {exc}"}
    down = sorted(name for name, result in results.items() if result["status"] == "down")
    body = {"status": "ready" if not down else "unavailable", "down": down, "checks": results}
    return JsonResponse(body, status=503 if down else 200)
