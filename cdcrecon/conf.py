"""Typed, read-only access to cdcrecon's own settings.

    from cdcrecon.conf import settings
    settings.reconciliation.interval_minutes

The values are parsed and validated once, from the environment, in ``cdcrecon/settings.py``
(``load_reconciliation_settings``); this module only gives them a typed face.  A bad value
raises ``ImproperlyConfigured`` naming the variable, so the process refuses to start.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import environ
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

T = TypeVar("T")

# The API's table names, and Cassandra's own rule for unquoted table names (48 characters).
TABLE_NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]{0,47}"
MAX_SAMPLE_SIZE = 1_000_000
BOOLEAN_WORDS = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}


@dataclass(frozen=True)
class ReconciliationSettings:
    enabled: bool
    interval_minutes: int
    drift_warning_threshold: float
    drift_critical_threshold: float
    sample_size: int
    tables: tuple[str, ...]
    recheck_delay_seconds: float
    max_concurrent_jobs: int
    job_time_limit_seconds: int
    heartbeat_timeout_seconds: int
    # A distributed job's size: rows per token-range segment, and how many of one job's
    # segments may be queued or running at once (so one big table cannot starve the others).
    segment_rows: int = 100_000
    max_segments_in_flight: int = 4
    # How long the CDC pipeline may take to carry a write over (a table mapping may set its
    # own): a difference whose source row was written more recently than this is in flight.
    cdc_lag_budget_seconds: float = 60.0
    # The kill switch of every table's repair policy (false: no auto-repair runs at all).
    auto_repair_enabled: bool = True
    # Rows per second a job may read from Cassandra, shared by all its segments (0: no cap).
    source_max_rows_per_second: int = 0


@dataclass(frozen=True)
class CassandraSettings:
    hosts: tuple[str, ...]
    port: int
    keyspace: str
    username: str | None
    password: str | None
    local_dc: str
    consistency: str
    protocol_version: int = 5


@dataclass(frozen=True)
class TargetSettings:
    database_url: str
    schema: str


def read_variable(
    env: environ.Env, name: str, rule: str, cast: Callable[..., T], default: Any
) -> T:
    """Read one variable through django-environ; a value it cannot cast names the variable."""
    try:
        return cast(name, default=default)
    except (TypeError, ValueError, ImproperlyConfigured) as exc:
        raw = env.ENVIRON.get(name)
        raise ImproperlyConfigured(f"{name}={raw!r} is not valid: expected {rule}.") from exc


def require_valid(ok: bool, name: str, value: Any, rule: str) -> None:
    if not ok:
        raise ImproperlyConfigured(f"{name}={value!r} is not valid: expected {rule}.")


def load_reconciliation_settings(env: environ.Env) -> ReconciliationSettings:
    """Parse the RECONCILIATION_* variables; raise ImproperlyConfigured naming a bad one."""
    percentage = "a percentage >= 0"
    warning = read_variable(
        env, "RECONCILIATION_DRIFT_WARNING_THRESHOLD", percentage, env.float, 1.0
    )
    critical = read_variable(
        env, "RECONCILIATION_DRIFT_CRITICAL_THRESHOLD", percentage, env.float, 5.0
    )
    require_valid(warning >= 0, "RECONCILIATION_DRIFT_WARNING_THRESHOLD", warning, percentage)
    require_valid(critical >= 0, "RECONCILIATION_DRIFT_CRITICAL_THRESHOLD", critical, percentage)
    if warning > critical:
        raise ImproperlyConfigured(
            f"RECONCILIATION_DRIFT_WARNING_THRESHOLD={warning} is above "
            f"RECONCILIATION_DRIFT_CRITICAL_THRESHOLD={critical}: the warning level must not "
            "exceed the critical level."
        )

    def positive(name: str, default: int, unit: str = "a whole number > 0") -> int:
        value = read_variable(env, name, unit, env.int, default)
        require_valid(value > 0, name, value, unit)
        return value

    sample_rule = f"a whole number from 1 to {MAX_SAMPLE_SIZE}"
    sample_size = positive("RECONCILIATION_SAMPLE_SIZE", 1000, sample_rule)
    require_valid(
        sample_size <= MAX_SAMPLE_SIZE, "RECONCILIATION_SAMPLE_SIZE", sample_size, sample_rule
    )

    table_rule = "comma-separated, distinct table names (letters, digits, underscores; none empty)"
    tables = tuple(
        name.strip()
        for name in read_variable(
            env, "RECONCILIATION_TABLES", table_rule, env.str, "users,orders,sessions"
        ).split(",")
    )
    require_valid(
        all(re.fullmatch(TABLE_NAME_PATTERN, name) for name in tables)
        and len(set(tables)) == len(tables),
        "RECONCILIATION_TABLES",
        ",".join(tables),
        table_rule,
    )
    delay_rule = "a number of seconds >= 0 (0 disables the re-check)"
    delay = read_variable(env, "RECONCILIATION_RECHECK_DELAY_SECONDS", delay_rule, env.float, 5.0)
    require_valid(delay >= 0, "RECONCILIATION_RECHECK_DELAY_SECONDS", delay, delay_rule)

    # django-environ reads any unknown word as False; an operator's typo must not switch
    # reconciliation off silently, so only its known spellings are accepted.
    enabled_text = (
        read_variable(env, "RECONCILIATION_ENABLED", "true or false", env.str, "true")
        .strip()
        .lower()
    )
    require_valid(
        enabled_text in BOOLEAN_WORDS, "RECONCILIATION_ENABLED", enabled_text, "true or false"
    )

    lag_rule = "a number of seconds >= 0"
    lag = read_variable(env, "RECONCILIATION_CDC_LAG_BUDGET_SECONDS", lag_rule, env.float, 60.0)
    require_valid(lag >= 0, "RECONCILIATION_CDC_LAG_BUDGET_SECONDS", lag, lag_rule)
    repair_text = (
        read_variable(env, "RECONCILIATION_AUTO_REPAIR_ENABLED", "true or false", env.str, "true")
        .strip()
        .lower()
    )
    require_valid(
        repair_text in BOOLEAN_WORDS,
        "RECONCILIATION_AUTO_REPAIR_ENABLED",
        repair_text,
        "true or false",
    )
    rate_rule = "a whole number of rows per second >= 0 (0: no cap)"
    rate = read_variable(env, "RECONCILIATION_SOURCE_MAX_ROWS_PER_SECOND", rate_rule, env.int, 0)
    require_valid(rate >= 0, "RECONCILIATION_SOURCE_MAX_ROWS_PER_SECOND", rate, rate_rule)

    return ReconciliationSettings(
        enabled=BOOLEAN_WORDS[enabled_text],
        interval_minutes=positive(
            "RECONCILIATION_INTERVAL_MINUTES", 60, "a whole number of minutes > 0"
        ),
        drift_warning_threshold=warning,
        drift_critical_threshold=critical,
        sample_size=sample_size,
        tables=tables,
        recheck_delay_seconds=delay,
        max_concurrent_jobs=positive("RECONCILIATION_MAX_CONCURRENT_JOBS", 3),
        job_time_limit_seconds=positive("RECONCILIATION_JOB_TIME_LIMIT_SECONDS", 7200),
        heartbeat_timeout_seconds=positive("RECONCILIATION_HEARTBEAT_TIMEOUT_SECONDS", 300),
        segment_rows=positive("RECONCILIATION_SEGMENT_ROWS", 100_000),
        max_segments_in_flight=positive("RECONCILIATION_MAX_SEGMENTS_IN_FLIGHT", 4),
        cdc_lag_budget_seconds=lag,
        auto_repair_enabled=BOOLEAN_WORDS[repair_text],
        source_max_rows_per_second=rate,
    )


#: How long the broker waits for a delivered task's acknowledgement before giving it to
#: another worker (kombu's Redis ``visibility_timeout``; Celery's default is one hour).
DEFAULT_VISIBILITY_TIMEOUT_SECONDS = 300


def load_broker_transport_options(env: environ.Env) -> dict[str, int]:
    """The Redis broker's transport options (``CELERY_BROKER_TRANSPORT_OPTIONS``).

    ``CELERY_VISIBILITY_TIMEOUT_SECONDS``: a task whose worker died (acks_late: not yet
    acknowledged) is given to another worker that long after it was delivered.  The workers
    look for such tasks every tenth of it (between 1 and 30 s), so a lost repair run resumes
    within about 1.1 times the timeout once a worker is up.  A task still running after the
    timeout is delivered a second time: every task is safe to run twice (run locks).
    """
    name = "CELERY_VISIBILITY_TIMEOUT_SECONDS"
    timeout = read_variable(
        env, name, "a whole number of seconds >= 1", env.int, DEFAULT_VISIBILITY_TIMEOUT_SECONDS
    )
    require_valid(timeout >= 1, name, timeout, "a whole number of seconds >= 1")
    return {
        "visibility_timeout": timeout,
        "unacked_restore_interval": max(1, min(30, timeout // 10)),
        "unacked_restore_throttle": 1,  # every sweep scans: the interval alone sets the pace
    }


class _Settings:
    """Attribute access to the parsed settings objects stored on django.conf.settings."""

    @property
    def reconciliation(self) -> ReconciliationSettings:
        return django_settings.RECONCILIATION  # type: ignore[no-any-return]

    @property
    def cassandra(self) -> CassandraSettings:
        return django_settings.CASSANDRA  # type: ignore[no-any-return]

    @property
    def target(self) -> TargetSettings:
        return django_settings.TARGET  # type: ignore[no-any-return]


settings = _Settings()
