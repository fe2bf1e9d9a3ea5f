"""The merge pairs rows by key bytes within a token, whatever the partition's width: the
in-memory path and the external-sort path (wide partitions) give the same differences."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from reconciliation.engine import merge
from reconciliation.engine.merge import PassCounts, Record, merge_by_token
from reconciliation.engine.spill import Spool


def diff(source: list[Record], target: list[Record]) -> tuple[set[tuple], PassCounts]:
    found, counts = diff_with_writes([(*r, None) for r in source], target)
    return {(k, c, p) for k, c, p, _ in found}, counts


def diff_with_writes(source: list[tuple], target: list[Record]) -> tuple[set[tuple], PassCounts]:
    """The differences (with their source writes) of source records that carry raw
    write-time summaries."""
    counts = PassCounts()
    with Spool() as spool:
        merge_by_token(iter(source), iter(target), spool, counts)
        found = {(k, c, tuple(sorted(p)), w) for k, c, p, w in spool.records()}
    return found, counts


def partition(token: int, keys: range, row: bytes = b"r") -> list[Record]:
    return [(token, b"k%08d" % k, row) for k in keys]


def shuffled(records: list[Record], seed: int) -> list[Record]:
    records = list(records)
    random.Random(seed).shuffle(records)
    return sorted(records, key=lambda r: r[0])  # token order only, keys in any order


@pytest.fixture(params=[3, 10_000], ids=["wide-path", "in-memory-path"])
def group_limit(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setattr(merge, "GROUP_IN_MEMORY", request.param)
    monkeypatch.setattr(merge, "WIDE_RUN_SIZE", 7)  # several runs on disk
    yield request.param


def test_a_wide_partition_reports_exactly_its_planted_differences(group_limit: int) -> None:
    source = partition(5, range(200)) + partition(9, range(3))
    target = [r for r in partition(5, range(200)) if r[1] != b"k%08d" % 17]  # missing
    target = [(t, k, b"changed" if k == b"k%08d" % 42 else r) for t, k, r in target]
    target += [(5, b"k%08d" % 500, b"r")]  # only on the target
    target += partition(9, range(3))

    found, counts = diff(shuffled(source, 1), shuffled(target, 2))

    assert found == {
        (b"k%08d" % 17, b"r", ()),
        (b"k%08d" % 42, b"r", (b"changed",)),
        (b"k%08d" % 500, None, (b"r",)),
    }
    assert (counts.cassandra_rows, counts.postgres_rows, counts.keys) == (203, 203, 204)


def test_wide_partitions_only_on_one_side_are_all_missing(group_limit: int) -> None:
    found, counts = diff(partition(1, range(20)), partition(2, range(20)))

    assert {k for k, c, p in found if c is None} == {b"k%08d" % i for i in range(20)}
    assert {k for k, c, p in found if not p} == {b"k%08d" % i for i in range(20)}
    assert counts.keys == 40


def test_a_key_held_twice_by_the_target_differs(group_limit: int) -> None:
    source = partition(3, range(10))
    target = partition(3, range(10)) + [(3, b"k%08d" % 4, b"r")]

    found, _ = diff(source, shuffled(target, 3))

    assert found == {(b"k%08d" % 4, b"r", (b"r", b"r"))}


def test_each_difference_carries_its_source_rows_write_time_on_either_path(
    group_limit: int,
) -> None:
    # (max WRITETIME µs, max TTL s or negative) as Cassandra summarised them.
    writes = {k: (1_000_000 + k, None) for k in range(12)}
    writes[7] = (2_000_000, 30)  # every cell has a TTL: the row expires in 30 s
    writes[8] = (None, None)  # no live regular cell: no write time
    source = [(4, b"k%08d" % k, b"r", writes[k]) for k in range(12)]
    target = [(4, b"k%08d" % k, b"changed") for k in range(12) if k not in (3, 7, 8)]
    target += [(4, b"k%08d" % 99, b"r")]  # only on the target: no source write

    found, _ = diff_with_writes(source, target)

    by_key = {k: w for k, _, _, w in found}
    assert by_key[b"k%08d" % 3] == (1_000_003, None)  # missing in the target
    assert by_key[b"k%08d" % 5] == (1_000_005, None)  # differs
    assert by_key[b"k%08d" % 8] is None
    assert by_key[b"k%08d" % 99] is None
    write_time, expires = by_key[b"k%08d" % 7]
    assert write_time == 2_000_000
    assert expires is not None and 25 < expires - __import__("time").time() <= 30
    assert len(found) == 13
