"""When a job fails: a message that names the store, recorded even when the app database
just restarted."""

from __future__ import annotations

import psycopg
from cassandra import DriverException, OperationTimedOut, Unauthorized
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionException
from django.db import Error as DjangoDatabaseError
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from cdcrecon.conf import settings
from reconciliation.connections import StoreUnavailable, ensure_app_database
from reconciliation.engine.keys import BadKey
from reconciliation.engine.schema import SchemaError
from reconciliation.jobs.create import BadJobRequest
from reconciliation.models import ReconciliationJob
from reconciliation.registry import TableNotFound, UnknownTable

# How long the failure path keeps trying to record FAILED on a fresh app-database
# connection (a PostgreSQL restart takes a few seconds); the reaper is the last resort.
RECORD_FAILURE_SECONDS = 30.0


def describe_failure(exc: BaseException) -> str:
    """A message for ``job.error_message``: which store failed and why, in a sentence."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, UnknownTable | TableNotFound | SchemaError | StoreUnavailable):
        return text
    if isinstance(exc, DjangoDatabaseError):  # Django's own connection: the app database
        return f"The app database (PostgreSQL) failed: {type(exc).__name__}: {text}"
    if isinstance(exc, BadKey | BadJobRequest):
        return f"Bad job parameters: {text}"
    if isinstance(exc, psycopg.OperationalError):
        return f"Target PostgreSQL is unreachable or failed: {text}"
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return f"Target PostgreSQL refused access (check the user's permissions): {text}"
    if isinstance(exc, psycopg.Error):
        return f"Target PostgreSQL failed: {text}"
    if isinstance(exc, NoHostAvailable | OperationTimedOut | ConnectionException):
        return f"Cassandra is unreachable: {text}"
    if isinstance(exc, Unauthorized):
        return f"Cassandra refused access (check the user's permissions): {text}"
    if isinstance(exc, DriverException):
        return f"Cassandra failed: {text}"
    if type(exc).__name__ == "SoftTimeLimitExceeded":
        return (
            f"Stopped: the job time limit of {settings.reconciliation.job_time_limit_seconds} s "
            "(RECONCILIATION_JOB_TIME_LIMIT_SECONDS) was exceeded."
        )
    if isinstance(exc, KeyboardInterrupt):
        return "Interrupted."
    return f"The job failed unexpectedly: {type(exc).__name__}: {text}"


def record_failure(job: ReconciliationJob, message: str) -> bool:
    """``job.mark_failed(message)``, on a fresh app-database connection if the old one died.

    A PostgreSQL restart kills the worker's connection: the first attempt then fails with
    "the connection is closed", and the next ones reconnect (every half second, for up to
    RECORD_FAILURE_SECONDS) until the database is back.  Only if it never comes back is the
    job left to the reaper.
    """
    for attempt in Retrying(
        stop=stop_after_delay(RECORD_FAILURE_SECONDS),
        wait=wait_fixed(0.5),
        retry=retry_if_exception_type(DjangoDatabaseError),
        reraise=True,
    ):
        with attempt:
            if attempt.retry_state.attempt_number > 1:
                ensure_app_database()
            return job.mark_failed(message)
    raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover
