"""The source read-rate cap's token bucket, against the real Redis (``make services``):
it holds its rate, shared by processes, takes a large request a bucketful at a time, and
backs off on overload and recovers (reconciliation.ratelimit).

Each test has buckets of its own (a key prefix unique to the test), so concurrent runs never
share one.  The bounds asserted are the cap itself (rows <= cap x elapsed x 1.1 + one
bucketful), not a speed.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from cassandra import ReadTimeout
from cassandra.cluster import NoHostAvailable
from cassandra.protocol import OverloadedErrorMessage

from reconciliation import ratelimit
from reconciliation.ratelimit import RateCapUnavailable, ReadCaps, RedisTokenBucket, read_caps

REDIS_URL = os.environ.get("CDCRECON_TEST_BROKER_URL", "redis://127.0.0.1:6379/3")


@pytest.fixture
def client() -> redis.Redis:
    connection = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
    try:
        connection.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {REDIS_URL} is unreachable: {exc}\nStart it: make services")
    return connection


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    name = f"cdcrecon_test:ratecap:{uuid.uuid4().hex}:"
    yield name
    for key in client.scan_iter(f"{name}*"):
        client.delete(key)


def take_for(bucket: RedisTokenBucket, seconds: float, rows: int) -> tuple[int, float]:
    """Acquire ``rows`` at a time for about ``seconds``: (rows taken, seconds elapsed)."""
    taken = 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        bucket.acquire(rows)
        taken += rows
    return taken, time.monotonic() - started


def within_cap(taken: int, cap: float, elapsed: float, burst: int) -> bool:
    return taken <= cap * elapsed * 1.1 + burst


def test_a_bucket_holds_its_rate_within_ten_percent(client, prefix) -> None:
    bucket = RedisTokenBucket(client, "table:t", 2000, prefix)
    assert bucket.capacity == 400  # 0.2 s of the cap: the burst, and a page's most rows

    taken, elapsed = take_for(bucket, 2.0, 100)

    assert within_cap(taken, 2000, elapsed, bucket.capacity), (taken, elapsed)
    assert taken >= 2000 * elapsed * 0.9, (taken, elapsed)  # and it does let the rows through


def _share_of_bucket(url: str, prefix: str, seconds: float, out: multiprocessing.Queue) -> None:
    """One worker process's reads: its own Redis connection, the shared bucket."""
    bucket = RedisTokenBucket(redis.Redis.from_url(url), "global", 1500, prefix)
    began = time.time()  # wall clock: the two processes' windows are compared
    taken, _ = take_for(bucket, seconds, 50)
    out.put((taken, began, time.time()))


def test_two_processes_sharing_one_bucket_together_hold_the_cap(client, prefix) -> None:
    context = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = context.Queue()
    workers = [
        context.Process(target=_share_of_bucket, args=(REDIS_URL, prefix, 2.0, out))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)

    total = sum(taken for taken, _, _ in results)
    # The window both processes read in: from the first start to the last end (a process
    # started late, as spawn may under load, reads on after the other has stopped).
    elapsed = max(end for _, _, end in results) - min(began for _, began, _ in results)
    # Together, not each: two uncoordinated buckets would read about twice the cap.
    assert within_cap(total, 1500, elapsed, 300), (results, elapsed)
    assert total >= 1500 * elapsed * 0.8, results
    assert all(taken >= total * 0.3 for taken, _, _ in results), results  # both were served


def test_threads_sharing_one_bucket_hold_the_cap(client, prefix) -> None:
    results: list[tuple[int, float]] = []

    def read() -> None:
        bucket = RedisTokenBucket(redis.Redis.from_url(REDIS_URL), "global", 1000, prefix)
        results.append(take_for(bucket, 1.5, 40))

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    total = sum(taken for taken, _ in results)
    assert within_cap(total, 1000, max(s for _, s in results), 200), results


def test_a_request_larger_than_the_bucket_is_taken_a_bucketful_at_a_time(client, prefix) -> None:
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    bucket = RedisTokenBucket(client, "table:big", 1000, prefix, sleep=sleep)
    started = time.monotonic()
    bucket.acquire(1000)  # five bucketfuls of 200
    elapsed = time.monotonic() - started

    # The first bucketful was there; the other four came at the cap's rate, one at a time.
    assert elapsed >= (1000 - 200) / 1000 * 0.95, elapsed
    assert len(waits) == 4, waits
    assert all(wait <= 200 / 1000 + 0.02 for wait in waits), waits


def test_a_refund_gives_back_rows_a_page_did_not_hold(client, prefix) -> None:
    bucket = RedisTokenBucket(client, "table:r", 1000, prefix)
    started = time.monotonic()
    for _ in range(5):
        bucket.acquire(200)
        bucket.refund(150)  # each page held 50 of its 200 rows
    # 250 rows read: within the first bucketful and its refill, no waiting for 1,000.
    assert time.monotonic() - started < 0.5


def test_back_off_halves_the_rate_for_everyone_then_recovers(client, prefix) -> None:
    bucket = RedisTokenBucket(client, "table:b", 1000, prefix)
    other_worker = RedisTokenBucket(redis.Redis.from_url(REDIS_URL), "table:b", 1000, prefix)
    assert bucket.current_rows_per_second() == 1000

    bucket.back_off()
    bucket.back_off()  # the same overload seen by another thread: one halving
    assert other_worker.current_rows_per_second() == pytest.approx(500)

    # Backed off, the bucket grants at the lower rate (it recovers 10% per bucketful).
    bucket.acquire(200)  # drain the burst
    started = time.monotonic()
    other_worker.acquire(400)
    elapsed = time.monotonic() - started
    assert elapsed >= 400 / 1000 * 1.2, elapsed  # slower than the cap itself allows
    recovering = bucket.current_rows_per_second()
    assert 500 < recovering < 1000, recovering

    bucket.acquire(1400)  # seven more clean bucketfuls: back at the cap
    assert bucket.current_rows_per_second() == pytest.approx(1000)


def test_back_off_stops_at_a_sixteenth_of_the_cap(client, prefix, monkeypatch) -> None:
    monkeypatch.setattr(ratelimit, "BACK_OFF_INTERVAL_SECONDS", 0)
    bucket = RedisTokenBucket(client, "table:floor", 1600, prefix)
    for _ in range(8):
        bucket.back_off()
    assert bucket.current_rows_per_second() == pytest.approx(100)


def test_the_caps_back_off_on_timeouts_and_overload_but_not_on_a_node_down(client, prefix) -> None:
    caps = read_caps(4000, "orders", 2000, client=client, prefix=prefix)
    assert caps is not None
    caps.on_transient(NoHostAvailable("down", {}))
    assert [b.current_rows_per_second() for b in caps.buckets] == [4000, 2000]

    caps.on_transient(OverloadedErrorMessage(0x1001, "overloaded", None))
    assert [b.current_rows_per_second() for b in caps.buckets] == [2000, 1000]


def test_read_caps_are_the_global_and_the_tables_own_and_none_without_either(
    client, prefix
) -> None:
    assert read_caps(0, "orders", None, client=client, prefix=prefix) is None
    assert read_caps(0, "orders", 0, client=client, prefix=prefix) is None

    only_global = read_caps(5000, "orders", None, client=client, prefix=prefix)
    assert isinstance(only_global, ReadCaps)
    assert [(b.key, b.rows_per_second) for b in only_global.buckets] == [(f"{prefix}global", 5000)]

    both = read_caps(5000, "orders", 800, client=client, prefix=prefix)
    assert both is not None
    assert [(b.scope, b.rows_per_second) for b in both.buckets] == [
        ("global", 5000),
        ("table:orders", 800),
    ]
    # The lower cap sets the page size (one bucketful of it).
    assert (both.rows_per_second, both.max_page_rows) == (800, 160)


def test_both_caps_apply_so_the_lower_one_holds(client, prefix) -> None:
    caps = read_caps(5000, "orders", 1000, client=client, prefix=prefix)
    assert caps is not None
    taken = 0
    started = time.monotonic()
    while time.monotonic() - started < 1.5:
        caps.acquire(100)
        taken += 100
    assert within_cap(taken, 1000, time.monotonic() - started, 200), taken


def test_an_unreachable_redis_fails_clearly(prefix) -> None:
    # Port 1 on this host: nothing listens there, so the connection is refused.
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    with pytest.raises(RateCapUnavailable, match="read-rate cap .*unreachable"):
        RedisTokenBucket(dead, "global", 1000, prefix).acquire(10)


def test_a_cap_must_be_positive(client, prefix) -> None:
    with pytest.raises(ValueError):
        RedisTokenBucket(client, "global", 0, prefix)


def test_a_read_timeout_is_an_overload(client, prefix) -> None:
    caps = read_caps(1000, "t", None, client=client, prefix=prefix)
    assert caps is not None
    caps.on_transient(
        ReadTimeout("read timeout", consistency=1, required_responses=1, received_responses=0)
    )
    assert caps.buckets[0].current_rows_per_second() == pytest.approx(500)
