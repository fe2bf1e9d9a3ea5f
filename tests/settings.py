"""Settings for the test suite: cdcrecon's own, pointed at stores the tests may clobber.

Tests never touch the demo keyspace or the `warehouse` database: they use the keyspace
`cdcrecon_test` and the target database `warehouse_test` (with CDCRECON_TEST_SUFFIX appended
so that two suites can run side by side on one machine).
"""

from __future__ import annotations

import os

_suffix = os.environ.get("CDCRECON_TEST_SUFFIX", "")
os.environ["CASSANDRA_KEYSPACE"] = f"cdcrecon_test{_suffix}"
os.environ["TARGET_DATABASE_URL"] = os.environ.get(
    "TEST_TARGET_DATABASE_URL", f"postgres://cdcrecon@127.0.0.1:5432/warehouse_test{_suffix}"
)
os.environ.setdefault("RECONCILIATION_RECHECK_DELAY_SECONDS", "0")
# Rows the tests plant are written moments before a job reads them: with the product's 60 s
# budget every one would be in flight.  Tests of the lag budget set a table's own.
os.environ.setdefault("RECONCILIATION_CDC_LAG_BUDGET_SECONDS", "0")
os.environ.setdefault("CASSANDRA_CONSISTENCY", "ONE")
# Plain http on 127.0.0.1 with DEBUG off, exactly like `make run` (scripts/run).
os.environ.setdefault("SECURE_COOKIES", "false")
# The request counters of this run: a Redis database of their own and a key prefix per run
# (inherited by the child processes), so concurrent suites never share a count.
os.environ.setdefault("CACHE_URL", "redis://127.0.0.1:6379/4")
os.environ.setdefault("CACHE_KEY_PREFIX", f"cdcrecon_test{_suffix}_{os.getpid()}")
# Rates no ordinary test reaches; the throttling tests set their own (tests/integration/
# test_security_throttling.py).
for _scope in ("ANON", "USER", "MUTATIONS"):
    os.environ.setdefault(f"API_THROTTLE_{_scope}", "1000000/minute")

from cdcrecon.settings import *  # noqa: E402,F403
from cdcrecon.settings import DATABASES  # noqa: E402

DATABASES["default"]["TEST"] = {"NAME": f"test_cdcrecon{_suffix}"}
DATABASES["default"]["CONN_MAX_AGE"] = 0
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
