"""Liveness (/healthz) and readiness (/readyz: every store and the broker reachable)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings as django_settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from cdcrecon.celery import app as celery_app
from reconciliation.connections import cassandra_session, close_cassandra, target_connection


def _check_cassandra() -> str:
    try:
        row = cassandra_session().execute("SELECT release_version FROM system.local").one()
    except Exception:
        close_cassandra()  # reconnect from scratch next time
        raise
    return f"Cassandra {row['release_version']}"


def _check_app_database() -> str:
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _check_target_database() -> str:
    with target_connection() as conn:
        conn.execute("SELECT 1")
    return "ok"


def _check_broker() -> str:
    with celery_app.connection_for_write(url=django_settings.CELERY_BROKER_URL) as conn:
        conn.ensure_connection(max_retries=1, timeout=3)
    return "ok"


CHECKS: dict[str, Callable[[], str]] = {
    "cassandra": _check_cassandra,
    "postgres": _check_app_database,
    "target_postgres": _check_target_database,
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
