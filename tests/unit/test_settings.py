"""Settings come from the environment; a bad value stops start-up naming the variable."""

from __future__ import annotations

import environ
import pytest
from django.core.exceptions import ImproperlyConfigured

from cdcrecon.conf import load_reconciliation_settings, settings


def load(**variables: str):
    env = environ.Env()
    env.ENVIRON = variables
    return load_reconciliation_settings(env)


def test_defaults_are_the_guides() -> None:
    conf = load()
    assert conf.enabled is True
    assert conf.interval_minutes == 60
    assert (conf.drift_warning_threshold, conf.drift_critical_threshold) == (1.0, 5.0)
    assert conf.sample_size == 1000
    assert conf.tables == ("users", "orders", "sessions")
    assert conf.recheck_delay_seconds == 5.0
    assert conf.max_concurrent_jobs == 3


def test_values_are_read_and_typed() -> None:
    conf = load(
        RECONCILIATION_ENABLED="false",
        RECONCILIATION_INTERVAL_MINUTES="15",
        RECONCILIATION_DRIFT_WARNING_THRESHOLD="2.5",
        RECONCILIATION_DRIFT_CRITICAL_THRESHOLD="10",
        RECONCILIATION_SAMPLE_SIZE="10000",
        RECONCILIATION_TABLES=" users , payments ",
    )
    assert conf.enabled is False
    assert conf.interval_minutes == 15
    assert (conf.drift_warning_threshold, conf.drift_critical_threshold) == (2.5, 10.0)
    assert conf.sample_size == 10000
    assert conf.tables == ("users", "payments")


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"RECONCILIATION_INTERVAL_MINUTES": "abc"}, "RECONCILIATION_INTERVAL_MINUTES"),
        ({"RECONCILIATION_INTERVAL_MINUTES": "0"}, "RECONCILIATION_INTERVAL_MINUTES"),
        ({"RECONCILIATION_ENABLED": "maybe"}, "RECONCILIATION_ENABLED"),
        ({"RECONCILIATION_DRIFT_WARNING_THRESHOLD": "6"}, "RECONCILIATION_DRIFT_WARNING_THRESHOLD"),
        (
            {"RECONCILIATION_DRIFT_CRITICAL_THRESHOLD": "-1"},
            "RECONCILIATION_DRIFT_CRITICAL_THRESHOLD",
        ),
        ({"RECONCILIATION_SAMPLE_SIZE": "0"}, "RECONCILIATION_SAMPLE_SIZE"),
        ({"RECONCILIATION_SAMPLE_SIZE": "5000001"}, "RECONCILIATION_SAMPLE_SIZE"),
        ({"RECONCILIATION_TABLES": "users,,orders"}, "RECONCILIATION_TABLES"),
        ({"RECONCILIATION_TABLES": ""}, "RECONCILIATION_TABLES"),
        ({"RECONCILIATION_TABLES": "users;drop"}, "RECONCILIATION_TABLES"),
        ({"RECONCILIATION_TABLES": "users,users"}, "RECONCILIATION_TABLES"),
        ({"RECONCILIATION_RECHECK_DELAY_SECONDS": "soon"}, "RECONCILIATION_RECHECK_DELAY_SECONDS"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(variables: dict[str, str], named: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=named):
        load(**variables)


def test_the_typed_view_reads_the_running_settings() -> None:
    assert settings.reconciliation.interval_minutes >= 1
    assert settings.cassandra.keyspace.startswith("cdcrecon_test")
    assert settings.target.database_url.endswith(settings.target.database_url.rsplit("/", 1)[-1])
