"""The Redis broker's visibility timeout: minutes, not Celery's hour, and how often the
workers look for tasks whose worker died (CELERY_VISIBILITY_TIMEOUT_SECONDS)."""

from __future__ import annotations

import environ
import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from cdcrecon.conf import load_broker_transport_options


def load(**variables: str) -> dict[str, int]:
    env = environ.Env()
    env.ENVIRON = variables
    return load_broker_transport_options(env)


def test_the_default_is_five_minutes_swept_every_thirty_seconds() -> None:
    assert load() == {
        "visibility_timeout": 300,
        "unacked_restore_interval": 30,
        "unacked_restore_throttle": 1,
    }


@pytest.mark.parametrize(("seconds", "sweep"), [("4", 1), ("60", 6), ("3600", 30)])
def test_the_sweep_is_a_tenth_of_the_timeout_between_1_and_30_seconds(seconds, sweep) -> None:
    options = load(CELERY_VISIBILITY_TIMEOUT_SECONDS=seconds)
    assert options["visibility_timeout"] == int(seconds)
    assert options["unacked_restore_interval"] == sweep


@pytest.mark.parametrize("bad", ["0", "-5", "soon", "1.5"])
def test_a_bad_value_names_the_variable(bad) -> None:
    with pytest.raises(ImproperlyConfigured, match="CELERY_VISIBILITY_TIMEOUT_SECONDS"):
        load(CELERY_VISIBILITY_TIMEOUT_SECONDS=bad)


def test_celery_reads_it_from_the_settings() -> None:
    from cdcrecon.celery import app

    expected = load_broker_transport_options(environ.Env())  # this process's environment
    assert django_settings.CELERY_BROKER_TRANSPORT_OPTIONS == expected
    assert app.conf.broker_transport_options == expected
