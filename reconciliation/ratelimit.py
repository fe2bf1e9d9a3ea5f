"""The source read-rate cap: rows per second read from Cassandra, shared by every worker.

A cap is a token bucket in Redis (``RedisTokenBucket``), one per *scope*, under the key
``cdcrecon:ratecap:<scope>``:

* ``global``: ``RECONCILIATION_SOURCE_MAX_ROWS_PER_SECOND``, the rows/s all of cdcrecon's
  jobs together may read from the Cassandra cluster;
* ``table:<name>``: a table mapping's own ``source_max_rows_per_second`` (when > 0), the
  rows/s its jobs may read from that table.

A job under both takes from both (``ReadCaps``), so the lower one holds.  Every segment of
a job, in whichever worker process or host, takes from the same buckets, so the job's rate
is the cap's however many workers run it.

**The bucket.**  One Lua script (atomic in Redis, timed by Redis' own clock, so the hosts'
clocks do not matter) refills ``rate × elapsed`` tokens up to ``capacity`` and *reserves*
the rows asked for: the tokens may go below zero, and the caller sleeps until the debt is
paid (``-tokens / rate``).  Callers are served in the order they asked, one round trip
each, and the rows granted by time *t* never exceed ``capacity + rate × t``.  The capacity
(the burst) is small: ``max(1, cap × BURST_SECONDS)`` rows, and the engine reads pages of at
most that many rows (``max_page_rows``), asking for a page's rows before it reads it and
giving back what the page did not hold (``refund``).  A request larger than the bucket is
taken a bucketful at a time.

**Back-off.**  When Cassandra reports a timeout or an overloaded or unavailable replica
(``connections.ResilientSession`` tells ``ReadCaps.on_transient`` before it retries; a node
that is down, ``NoHostAvailable``, is left to the retry), the scope's rate is
halved (down to ``MIN_FACTOR`` of the cap), at most once per ``BACK_OFF_INTERVAL_SECONDS``
(one overload seen by eight reader threads is one halving).  The factor lives in the
bucket, so every worker slows down together; each clean bucketful of rows then raises it
by ``RECOVERY`` (10 %) until it is back at the cap.  Without a cap there is no bucket: the
retry's own exponential back-off (tenacity) is all.

**Redis unreachable.**  The job fails with ``RateCapUnavailable`` (a ``StoreUnavailable``,
so its message is the job's error): a cap is a promise to the cluster's owners, and reading
without it would break that promise silently.  Celery needs the same Redis anyway.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from cassandra import OperationTimedOut, ReadTimeout, Unavailable
from cassandra.protocol import OverloadedErrorMessage
from django.conf import settings as django_settings
from redis.commands.core import Script

from cdcrecon.conf import settings
from reconciliation.connections import StoreUnavailable

logger = logging.getLogger(__name__)

KEY_PREFIX = "cdcrecon:ratecap:"
GLOBAL_SCOPE = "global"
#: The bucket holds this many seconds of the cap (the burst), and a page at most as much.
BURST_SECONDS = 0.2
MIN_FACTOR = 1 / 16
BACK_OFF_INTERVAL_SECONDS = 1.0
RECOVERY = 0.1
#: An idle bucket's state expires (a new one starts full, at the cap).
IDLE_TTL_SECONDS = 3600
#: The driver's errors that mean "Cassandra is struggling": the caps back off on them.
OVERLOAD_ERRORS = (ReadTimeout, OperationTimedOut, Unavailable, OverloadedErrorMessage)

# KEYS[1]: the bucket.  ARGV: cap (rows/s), capacity (rows), rows, operation ("take",
# "refund", "back_off", "peek"), minimum factor, back-off interval (s), recovery per
# bucketful, idle TTL (s).  Returns {seconds to wait, factor} as strings (Redis would cut a
# Lua number to an integer).
BUCKET_SCRIPT = """
local cap = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local rows = tonumber(ARGV[3])
local op = ARGV[4]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'factor', 'backoff_ts')
local factor = tonumber(state[3]) or 1
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
local backoff_ts = tonumber(state[4]) or 0
local elapsed = now - ts
if elapsed < 0 then elapsed = 0 end
tokens = math.min(capacity, tokens + elapsed * cap * factor)
local wait = 0
if op == 'take' then
  tokens = tokens - rows
  if tokens < 0 then wait = -tokens / (cap * factor) end
  factor = math.min(1, factor * (1 + tonumber(ARGV[7])) ^ (rows / capacity))
elseif op == 'refund' then
  tokens = math.min(capacity, tokens + rows)
elseif op == 'back_off' then
  if now - backoff_ts >= tonumber(ARGV[6]) then
    factor = math.max(tonumber(ARGV[5]), factor / 2)
    backoff_ts = now
  end
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', string.format('%.6f', now),
  'factor', tostring(factor), 'backoff_ts', string.format('%.6f', backoff_ts))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[8]))
return {tostring(wait), tostring(factor)}
"""


class RateCapUnavailable(StoreUnavailable):
    """Redis, which holds the read-rate buckets, could not be reached."""


@dataclass
class RedisTokenBucket:
    """One scope's cap: ``rows_per_second`` shared through Redis by every process using
    ``key`` (module docstring).  ``acquire`` blocks until the rows may be read."""

    client: redis.Redis
    scope: str
    rows_per_second: int
    prefix: str = KEY_PREFIX
    sleep: Callable[[float], None] = time.sleep
    capacity: int = field(init=False)
    _script: Script = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.rows_per_second <= 0:
            raise ValueError(f"a read-rate cap must be > 0 rows/s, not {self.rows_per_second}")
        self.capacity = max(1, int(self.rows_per_second * BURST_SECONDS))
        self._script = self.client.register_script(BUCKET_SCRIPT)

    @property
    def key(self) -> str:
        return f"{self.prefix}{self.scope}"

    @property
    def max_page_rows(self) -> int:
        """The most rows one page may hold: one bucketful."""
        return self.capacity

    def _run(self, operation: str, rows: int = 0) -> tuple[float, float]:
        try:
            wait, factor = self._script(
                keys=[self.key],
                args=[
                    self.rows_per_second,
                    self.capacity,
                    rows,
                    operation,
                    MIN_FACTOR,
                    BACK_OFF_INTERVAL_SECONDS,
                    RECOVERY,
                    IDLE_TTL_SECONDS,
                ],
            )
        except (redis.RedisError, OSError) as exc:
            logger.error("The read-rate cap %s cannot be enforced: %s", self.key, exc)
            raise RateCapUnavailable(
                f"Redis, which holds the source read-rate cap ({self.scope}: "
                f"{self.rows_per_second} rows/s), is unreachable: {exc}"
            ) from exc
        return float(wait), float(factor)

    def acquire(self, rows: int) -> None:
        """Take ``rows`` tokens, a bucketful at a time, sleeping as long as the bucket says."""
        while rows > 0:
            chunk = min(rows, self.capacity)
            wait, _ = self._run("take", chunk)
            if wait > 0:
                self.sleep(wait)
            rows -= chunk

    def refund(self, rows: int) -> None:
        """Give back rows asked for but not read (a page shorter than its fetch size)."""
        if rows > 0:
            self._run("refund", rows)

    def back_off(self) -> None:
        """Cassandra is struggling: halve this scope's rate, for every worker."""
        _, factor = self._run("back_off")
        logger.warning(
            "Cassandra reported a timeout or overload: the read-rate cap %s is now %.0f rows/s",
            self.key,
            self.rows_per_second * factor,
        )

    def current_rows_per_second(self) -> float:
        """The rate the bucket now grants (the cap, or less while backing off)."""
        _, factor = self._run("peek")
        return self.rows_per_second * factor


@dataclass
class ReadCaps:
    """Every cap a job reads under (the global one, the table's): each must allow a read."""

    buckets: list[RedisTokenBucket]

    @property
    def max_page_rows(self) -> int:
        return min(bucket.max_page_rows for bucket in self.buckets)

    @property
    def rows_per_second(self) -> int:
        return min(bucket.rows_per_second for bucket in self.buckets)

    def acquire(self, rows: int) -> None:
        for bucket in self.buckets:
            bucket.acquire(rows)

    def refund(self, rows: int) -> None:
        for bucket in self.buckets:
            bucket.refund(rows)

    def back_off(self) -> None:
        for bucket in self.buckets:
            bucket.back_off()

    def on_transient(self, error: BaseException) -> None:
        """``ResilientSession``'s hook: back off on a timeout or an overload (a node that
        is simply down is the retry's business, not the rate's)."""
        if isinstance(error, OVERLOAD_ERRORS):
            self.back_off()

    def describe(self) -> str:
        return ", ".join(f"{b.scope} {b.rows_per_second} rows/s" for b in self.buckets)


_clients: dict[tuple[int, str], redis.Redis] = {}
_clients_lock = threading.Lock()


def redis_client(url: str | None = None) -> redis.Redis:
    """This process's client of the Redis that holds the buckets: the broker's
    (``CELERY_BROKER_URL``) unless ``url`` is given."""
    if url is None:
        url = str(django_settings.CELERY_BROKER_URL)
    with _clients_lock:
        key = (os.getpid(), url)  # a forked pool process builds its own connections
        if key not in _clients:
            _clients[key] = redis.Redis.from_url(
                url, socket_connect_timeout=5, socket_timeout=10, health_check_interval=30
            )
        return _clients[key]


def read_caps(
    global_rows_per_second: int,
    table: str,
    table_rows_per_second: int | None,
    client: redis.Redis | None = None,
    prefix: str = KEY_PREFIX,
) -> ReadCaps | None:
    """The caps a job on ``table`` reads under: the global one when > 0, the table's own
    when set and > 0 (both when both); None when there is neither (no cost at all)."""
    scopes: list[tuple[str, int]] = []
    if global_rows_per_second > 0:
        scopes.append((GLOBAL_SCOPE, global_rows_per_second))
    if table_rows_per_second:
        scopes.append((f"table:{table}", table_rows_per_second))
    if not scopes:
        return None
    client = client or redis_client()
    return ReadCaps([RedisTokenBucket(client, scope, rate, prefix) for scope, rate in scopes])


def caps_for(mapping: Any) -> ReadCaps | None:
    """``read_caps`` for a ``TableMapping``: the setting and the mapping's own field."""
    return read_caps(
        settings.reconciliation.source_max_rows_per_second,
        mapping.name,
        mapping.source_max_rows_per_second,
    )
