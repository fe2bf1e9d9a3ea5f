"""Steady state through the real pipeline: every CQL type the pipeline carries faithfully, on
10,000 rows, with writes going on during a CHECKSUM job. Once the job's in-flight differences
are re-checked, nothing is left PENDING: the copy is right, and what was in transit arrived."""

from __future__ import annotations

import random
import threading
import time
import uuid

import pytest
from cassandra.concurrent import execute_concurrent_with_args

from reconciliation.choices import RecheckRule, ResolutionStatus
from reconciliation.ledger import inflight
from reconciliation.models import Mismatch
from tests.pipeline.conftest import count_rows, pending, run_job, wait_rows

pytestmark = pytest.mark.pipeline

ROWS = 10_000
# (column, CQL type, PostgreSQL type): the types the connector and the sink carry as they are
# (README: "Through the pipeline" lists the ones they do not).
TYPES = [
    ("c_text", "text", "text"),
    ("c_ascii", "ascii", "varchar(40)"),
    ("c_varchar", "varchar", "text"),
    ("c_tinyint", "tinyint", "smallint"),
    ("c_smallint", "smallint", "integer"),
    ("c_int", "int", "bigint"),
    ("c_bigint", "bigint", "numeric(20, 0)"),
    ("c_varint", "varint", "numeric"),
    ("c_decimal", "decimal", "numeric(14, 4)"),
    ("c_float", "float", "real"),
    ("c_double", "double", "double precision"),
    ("c_boolean", "boolean", "boolean"),
    ("c_uuid", "uuid", "uuid"),
    ("c_timeuuid", "timeuuid", "uuid"),
    ("c_timestamp", "timestamp", "timestamptz"),
    ("c_date", "date", "date"),
    ("c_time", "time", "time"),
    ("c_blob", "blob", "bytea"),
    ("c_inet", "inet", "inet"),
    ("c_list", "list<int>", "integer[]"),
    ("c_set", "set<int>", "integer[]"),
    ("c_set_uuid", "set<uuid>", "jsonb"),
    ("c_map", "map<text, int>", "jsonb"),
    ("c_tuple", "tuple<int, text, boolean>", "jsonb"),
    ("c_frozen_list", "frozen<list<text>>", "text[]"),
]
CASSANDRA = "id int PRIMARY KEY, " + ", ".join(f"{c} {t}" for c, t, _ in TYPES)
POSTGRES = "id integer PRIMARY KEY, " + ", ".join(f"{c} {t}" for c, _, t in TYPES)
COLUMNS = ["id"] + [c for c, _, _ in TYPES]


def literal_row(i: int, rng: random.Random) -> tuple[object, ...]:
    """One row of CQL literals, as text the driver binds (deterministic from ``i``)."""
    import datetime as dt
    import decimal
    import ipaddress

    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=rng.randrange(10**10))
    return (
        i,
        f"héllo {i}",
        f"ascii-{i}",
        "" if i % 97 == 0 else f"v{i}",  # an empty string is not NULL
        rng.randrange(-128, 128),
        rng.randrange(-32768, 32768),
        rng.randrange(-(2**31), 2**31),
        rng.randrange(-(2**62), 2**62),
        rng.randrange(10**30),
        decimal.Decimal(rng.randrange(-(10**9), 10**9)) / 10_000,
        rng.choice([0.1, 1.5, -3.25, 3.4028235e38]),
        rng.choice([0.1, 1e300, -2.5, float("nan")]),
        i % 2 == 0,
        uuid.UUID(int=rng.getrandbits(128)),
        uuid.uuid1(node=i, clock_seq=i % 16384),
        when,
        (when.date()),
        dt.time(rng.randrange(24), rng.randrange(60), rng.randrange(60), rng.randrange(10**6)),
        rng.randbytes(rng.randrange(0, 16)),
        str(ipaddress.ip_address(rng.getrandbits(32))) if i % 3 else "::1",
        [rng.randrange(100) for _ in range(rng.randrange(0, 4))] or None,
        {rng.randrange(100) for _ in range(rng.randrange(0, 4))} or None,
        {uuid.UUID(int=rng.getrandbits(128))},
        {"a": i, "b": -i},
        (i, f"t{i}", i % 3 == 0),
        [f"x{i}", f"y{i}"],
    )


def test_ten_thousand_rows_of_every_carried_type_arrive_equal_with_writes_going_on(
    cassandra, target, captured_table, sink_factory
) -> None:
    mapping = captured_table(CASSANDRA, POSTGRES)
    sink_factory()
    rng = random.Random(26)
    insert = cassandra.prepare(
        f"INSERT INTO {mapping.cassandra_table} ({', '.join(COLUMNS)}) "
        f"VALUES ({', '.join('?' for _ in COLUMNS)})"
    )
    rows = [literal_row(i, rng) for i in range(ROWS)]
    execute_concurrent_with_args(cassandra, insert, rows, concurrency=64, raise_on_first_error=True)
    wait_rows(target, mapping.postgres_table, ROWS, timeout=120)

    # Writes go on while the job scans: ~30 a second, updates and new rows.
    stop = threading.Event()
    written: list[int] = []

    def keep_writing() -> None:
        i = ROWS
        while not stop.is_set():
            cassandra.execute(insert, literal_row(i if i % 2 else rng.randrange(ROWS), rng))
            written.append(i)
            i += 1
            time.sleep(0.03)

    writer = threading.Thread(target=keep_writing, daemon=True)
    writer.start()
    try:
        job = run_job(mapping)
    finally:
        stop.set()
        writer.join(10)

    assert len(written) > 10, "the writer did not write during the job"
    assert job.recheck_rule == RecheckRule.WRITE_TIME
    assert job.cassandra_row_count >= ROWS
    settled = inflight.settle_job(job)
    job.refresh_from_db()
    open_now = dict(
        Mismatch.objects.filter(table_name=mapping.name)
        .exclude(resolution_status=ResolutionStatus.AUTO_RESOLVED)
        .values_list("primary_key_value", "resolution_status")
    )
    assert pending(mapping) == 0, (open_now, settled)
    assert open_now == {}, open_now
    assert job.mismatch_count == 0, job.schema_warnings
    assert count_rows(target, mapping.postgres_table) >= ROWS
