"""Request rates: per user, per anonymous IP, and a stricter budget for the calls that start
work or write (trigger, repair, recheck, erasure), counted in Redis.

Each test sets its own rates; tests/settings.py gives everything else rates no test reaches.
Every test uses fresh users (and anonymous tests their own IP), so counts never carry over.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.core.cache import cache

from tests.integration.conftest import TRIGGER_JOBS, VIEW_JOBS

pytestmark = pytest.mark.django_db

GENEROUS = "1000000/minute"


@pytest.fixture
def rates(settings: Any) -> Any:
    """``rates(mutations="10/minute", ...)``: this test's throttle rates."""

    def apply(**scopes: str) -> None:
        framework = dict(settings.REST_FRAMEWORK)
        framework["DEFAULT_THROTTLE_RATES"] = {
            "anon": GENEROUS,
            "user": GENEROUS,
            "mutations": GENEROUS,
            **scopes,
        }
        settings.REST_FRAMEWORK = framework

    return apply


def trigger(client: Any) -> Any:
    return client.post(
        "/reconciliation/trigger",
        {"tables": ["users"], "validation_strategy": "ROW_COUNT"},
        format="json",
    )


def test_the_eleventh_trigger_in_a_minute_is_a_429_with_retry_after(
    api_client, rates, django_capture_on_commit_callbacks
) -> None:
    rates(mutations="10/minute")
    operator = api_client(VIEW_JOBS, TRIGGER_JOBS)

    with django_capture_on_commit_callbacks(execute=False):
        answers = [trigger(operator) for _ in range(11)]

    # the first creates the job, the next nine find it running: all within the budget
    assert [a.status_code for a in answers[:10]] == [202] + [409] * 9
    throttled = answers[10]
    assert throttled.status_code == 429
    assert 0 < int(throttled["Retry-After"]) <= 60
    body = throttled.json()
    assert set(body) == {"error", "detail", "fields"}
    assert body["error"] == "throttled"
    # reading is not a mutation: still allowed
    assert operator.get("/reconciliation/jobs").status_code == 200


def test_the_mutation_budget_is_per_user(api_client, rates) -> None:
    rates(mutations="2/minute")
    first, second = api_client(TRIGGER_JOBS), api_client(TRIGGER_JOBS)

    assert [trigger(first).status_code for _ in range(3)][-1] == 429
    assert trigger(second).status_code != 429


def test_a_scope_rate_of_its_own_wins_over_the_mutations_rate(api_client, rates) -> None:
    rates(mutations="1/minute", trigger="3/minute")
    operator = api_client(TRIGGER_JOBS)

    codes = [trigger(operator).status_code for _ in range(4)]

    assert 429 not in codes[:3]
    assert codes[3] == 429


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/reconciliation/mismatches/{id}/repair"),
        ("delete", "/records/cdcrecon_test/users/u-{id}?reason=ticket"),
    ],
)
def test_repair_and_erasure_have_the_stricter_budget(api_client, rates, method, path) -> None:
    rates(mutations="2/minute")
    superuser = api_client(superuser=True)
    url = path.format(id=uuid.uuid4())

    codes = [getattr(superuser, method)(url, format="json").status_code for _ in range(3)]

    assert 429 not in codes[:2]  # (404s: nothing to repair or erase; still counted)
    assert codes[2] == 429


def test_the_per_user_rate_applies_to_every_call(api_client, rates) -> None:
    rates(user="3/minute")
    reader = api_client(VIEW_JOBS)

    codes = [reader.get("/reconciliation/jobs").status_code for _ in range(4)]

    assert codes == [200, 200, 200, 429]


def test_anonymous_callers_are_limited_per_ip(client, rates) -> None:
    # (DRF checks permissions before rates: an anonymous call to a protected endpoint is a
    # plain 401; the anonymous rate guards what anyone may read, such as the schema.)
    rates(anon="2/minute")
    ip = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"

    codes = [client.get("/api/schema/", REMOTE_ADDR=ip).status_code for _ in range(3)]
    other_ip = client.get("/api/schema/", REMOTE_ADDR=f"{ip}1").status_code

    assert codes == [200, 200, 429]
    assert other_ip == 200


def test_the_counts_live_in_redis_shared_by_every_worker(api_client, rates) -> None:
    rates(user="5/minute")
    reader = api_client(VIEW_JOBS)
    reader.get("/reconciliation/jobs")

    assert django_settings.CACHES["default"]["BACKEND"].endswith("RedisCache")
    # Another process (another gunicorn worker or host) reads the same count from Redis.
    store = redis.Redis.from_url(django_settings.CACHES["default"]["LOCATION"])
    key = cache.make_key(f"throttle_user_{reader.user.pk}")
    assert store.exists(key)
    assert store.ttl(key) > 0
