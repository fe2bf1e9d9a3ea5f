"""The CQL types the pipeline does not carry as they are, as the README's table says: what the
copy holds, and whether cdcrecon then calls the row equal. (The types it does carry are in
test_steady_state.py.)"""

from __future__ import annotations

import time

import pytest

from reconciliation.choices import MismatchType
from reconciliation.models import Mismatch
from tests.pipeline.conftest import micros, run_job, wait_rows

pytestmark = pytest.mark.pipeline

CASSANDRA = (
    "id int PRIMARY KEY, c_duration duration, c_map_int map<int, decimal>, "
    "c_map_ts map<timestamp, boolean>, c_udt frozen<{udt}>"
)
POSTGRES = (
    "id integer PRIMARY KEY, c_duration interval, c_map_int jsonb, c_map_ts jsonb, c_udt jsonb"
)


def test_durations_and_timestamp_map_keys_differ_in_the_copy_udts_and_int_maps_arrive_equal(
    cassandra, target, cassandra_keyspace, captured_table, sink_factory
) -> None:
    cassandra.execute(
        f"CREATE TYPE IF NOT EXISTS {cassandra_keyspace}.pipe_addr (street text, n int)"
    )
    time.sleep(1)
    mapping = captured_table(CASSANDRA.format(udt="pipe_addr"), POSTGRES)
    sink_factory()
    an_hour_ago = micros(time.time() - 3600)
    table = mapping.cassandra_table
    cassandra.execute(
        f"INSERT INTO {table} (id, c_udt) VALUES (1, {{street: 'Main', n: 5}}) "
        f"USING TIMESTAMP {an_hour_ago}"
    )
    cassandra.execute(
        f"INSERT INTO {table} (id, c_duration) VALUES (2, 1mo2d3h) USING TIMESTAMP {an_hour_ago}"
    )
    cassandra.execute(
        f"INSERT INTO {table} (id, c_map_int) VALUES (3, {{1: 1.10, 2: 3}}) "
        f"USING TIMESTAMP {an_hour_ago}"
    )
    cassandra.execute(
        f"INSERT INTO {table} (id, c_map_ts) VALUES (4, {{'2025-01-01 00:00:00+0000': true}}) "
        f"USING TIMESTAMP {an_hour_ago}"
    )
    wait_rows(target, mapping.postgres_table, 4)
    copy = dict(
        target.execute(
            f"SELECT id, row_to_json(t)::jsonb FROM public.{mapping.postgres_table} t"
        ).fetchall()
    )
    assert copy[2]["c_duration"] == "32 days 03:00:00"  # a month became 30 days
    assert copy[3]["c_map_int"] == {"1": "1.10", "2": "3"}  # decimals as strings: still equal
    assert copy[4]["c_map_ts"] == {"1735689600000": True}  # epoch milliseconds as keys

    job = run_job(mapping)

    differing = dict(
        Mismatch.objects.filter(table_name=mapping.name).values_list(
            "primary_key_value", "mismatch_type"
        )
    )
    assert differing == dict.fromkeys(["2", "4"], MismatchType.DATA_MISMATCH)
    assert job.mismatch_count == 2
