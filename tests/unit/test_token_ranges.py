"""Token ranges: a distributed job's segments cover the ring exactly once."""

from __future__ import annotations

import pytest

from reconciliation.engine.keydiff import DIGEST_SIZE, row_digest
from reconciliation.engine.merge import PassCounts, merge_by_token
from reconciliation.engine.records import MAX_TOKEN, MIN_TOKEN
from reconciliation.engine.ring import split_range, token_segments
from reconciliation.engine.spill import Spool


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 64, 4096])
def test_split_range_covers_the_ring_contiguously_without_overlap(count: int) -> None:
    ranges = split_range(MIN_TOKEN, MAX_TOKEN, count)

    assert len(ranges) == count
    assert ranges[0][0] == MIN_TOKEN and ranges[-1][1] == MAX_TOKEN
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    assert all(start < end for start, end in ranges)


def test_split_range_of_a_sub_range_stays_inside_it_and_never_makes_empty_ranges() -> None:
    start, end = token_segments(8)[3]
    inside = split_range(start, end, 8)
    assert inside[0][0] == start and inside[-1][1] == end

    assert split_range(10, 13, 8) == [(10, 11), (11, 12), (12, 13)]


def test_the_merge_compares_source_rows_with_staged_row_hashes() -> None:
    source = [(1, b"a", b"row-a", None), (2, b"b", b"row-b", None), (3, b"c", b"row-c", None)]
    staged = [
        (1, b"a", row_digest(b"row-a")),  # equal
        (2, b"b", row_digest(b"changed")),  # differs
        (4, b"d", row_digest(b"row-d")),  # target only
    ]
    counts = PassCounts()
    with Spool() as differences:
        merge_by_token(iter(source), iter(staged), differences, counts, row_digest)
        found = sorted(differences.records())

    assert found == [
        (b"b", b"row-b", (row_digest(b"changed"),), None),
        (b"c", b"row-c", (), None),
        (b"d", None, (row_digest(b"row-d"),), None),
    ]
    assert (counts.cassandra_rows, counts.postgres_rows, counts.keys) == (3, 3, 4)
    assert len(row_digest(b"x")) == DIGEST_SIZE
