"""The merge of two token-ordered record streams: which keys differ, and how.

Records are ``(token, key bytes, row bytes)`` (``records.py``); a source record has a
fourth element, the row's raw write-time summary (or None).  A difference is ``(key bytes,
source row bytes or None, (target row bytes, ...), source write)``: the target side is a
tuple because a target table without a primary key may hold a key more than once, and the
source write is the source row's ``(write time, expiry)`` (``records.source_write``,
summarised here, for the differing rows only; None without a source row or write time).

Rows pair by key bytes (the engine's one key equality, ``records.py``) within a token.  A
token's rows (a partition) are paired in memory up to ``GROUP_IN_MEMORY`` rows a side; a
wider partition is streamed: both sides' rows of that token go to an external sort by key
bytes (``spill.SortedRuns``) and are merge-joined, so memory stays bounded by constants
whatever the partition's width.
"""

from __future__ import annotations

import marshal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from reconciliation.engine.records import RawWrite, SourceWrite, source_write
from reconciliation.engine.spill import SortedRuns, Spool

#: A target record: (token, key bytes, row bytes or hash).
Record = tuple[int, bytes, bytes]
#: A source record: (token, key bytes, row bytes, raw write-time summary or None).
SourceRecord = tuple[int, bytes, bytes, "RawWrite | None"]
AnyRecord = TypeVar("AnyRecord", Record, SourceRecord)

GROUP_IN_MEMORY = 10_000
WIDE_RUN_SIZE = 50_000


# A difference found by a pass: (key bytes, Cassandra row bytes or None, target row bytes...,
# the source row's write) — a target without a primary key may hold a key more than once.
Diff = tuple[bytes, bytes | None, tuple[bytes, ...], SourceWrite | None]


def _written(raw: RawWrite | None) -> SourceWrite | None:
    return None if raw is None else source_write(raw, time.time())


Digest = Callable[[bytes], bytes] | None


def agree(
    cassandra_row: bytes | None, postgres_rows: tuple[bytes, ...], digest: Digest = None
) -> bool:
    """One source row and exactly one equal target row (or neither).  With ``digest`` the
    target's rows are given as hashes (``keydiff.row_digest``) and the source row is hashed
    to compare."""
    if cassandra_row is None:
        return not postgres_rows
    if digest is not None and cassandra_row is not None:
        cassandra_row = digest(cassandra_row)
    return len(postgres_rows) == 1 and postgres_rows[0] == cassandra_row


# -- the merge --------------------------------------------------------------------------------


@dataclass
class PassCounts:
    cassandra_rows: int = 0
    postgres_rows: int = 0
    keys: int = 0


def merge_by_token(
    source: Iterator[SourceRecord],
    target: Iterator[Record],
    differences: Spool,
    counts: PassCounts,
    digest: Digest = None,
) -> None:
    """Walk two token-ordered record streams together, spooling every differing key.

    The common case, one row per token on each side, takes a fast path; a token with
    several rows (a partition with clustering rows, a token collision, a duplicated target
    key) is compared as a group, by key.  With ``digest``, the target's records carry row
    hashes and each source row is hashed to compare; differences keep the source row's
    bytes and the target's hashes.
    """
    add = differences.add
    c_rows = p_rows = keys = 0
    c = next(source, None)
    p = next(target, None)
    while c is not None and p is not None:
        token = c[0]
        if token == p[0]:
            c_next = next(source, None)
            p_next = next(target, None)
            if (c_next is None or c_next[0] != token) and (p_next is None or p_next[0] != token):
                c_rows += 1
                p_rows += 1
                if c[1] == p[1]:
                    keys += 1
                    if (c[2] if digest is None else digest(c[2])) != p[2]:
                        add((c[1], c[2], (p[2],), _written(c[3])))
                else:  # a token collision between two different keys
                    keys += 2
                    add((c[1], c[2], (), _written(c[3])))
                    add((p[1], None, (p[2],), None))
                c, p = c_next, p_next
                continue
            c_group, c = _group(c, c_next, source)
            p_group, p = _group(p, p_next, target)
        elif token < p[0]:
            c_group, c = _group(c, next(source, None), source)
            p_group = []
        else:
            p_group, p = _group(p, next(target, None), target)
            c_group = []
        if len(c_group) > GROUP_IN_MEMORY or len(p_group) > GROUP_IN_MEMORY:
            seen, c, p = _compare_wide(c_group, c, source, p_group, p, target, add, digest)
            c_rows += seen[0]
            p_rows += seen[1]
            keys += seen[2]
            continue
        c_rows += len(c_group)
        p_rows += len(p_group)
        keys += _compare_group(c_group, p_group, add, digest)
    while c is not None:  # the source's last tokens: not on the target
        group, c = _group(c, next(source, None), source)
        if len(group) > GROUP_IN_MEMORY:
            seen, c, _ = _compare_wide(group, c, source, [], None, iter(()), add, digest)
            c_rows += seen[0]
            keys += seen[2]
            continue
        c_rows += len(group)
        keys += _compare_group(group, [], add, digest)
    while p is not None:  # the target's last tokens: not in the source
        p_group, p = _group(p, next(target, None), target)
        if len(p_group) > GROUP_IN_MEMORY:
            seen, _, p = _compare_wide([], None, iter(()), p_group, p, target, add, digest)
            p_rows += seen[1]
            keys += seen[2]
            continue
        p_rows += len(p_group)
        keys += _compare_group([], p_group, add, digest)
    counts.cassandra_rows += c_rows
    counts.postgres_rows += p_rows
    counts.keys += keys


def _group(
    first: AnyRecord,
    following: AnyRecord | None,
    stream: Iterator[AnyRecord],
) -> tuple[list[AnyRecord], AnyRecord | None]:
    """``first`` and the records after it with the same token, up to one more than
    ``GROUP_IN_MEMORY`` (then the group continues in the stream); and the next record."""
    group = [first]
    while following is not None and following[0] == first[0]:
        group.append(following)
        following = next(stream, None)
        if len(group) > GROUP_IN_MEMORY:
            break
    return group, following


def _spill_token(
    group: list[AnyRecord], following: AnyRecord | None, stream: Iterator[AnyRecord]
) -> tuple[SortedRuns, AnyRecord | None]:
    """The rest of a wide token's records, with ``group``, sorted by key on disk: ``(key,
    row)`` for the target, ``(key, row, marshalled raw write)`` for the source (bytes: the
    external merge compares whole tuples, and a raw write may hold None)."""
    runs = SortedRuns(WIDE_RUN_SIZE)
    if group:
        token = group[0][0]
        runs.extend([_spilled(record) for record in group])
        while following is not None and following[0] == token:
            runs.add(_spilled(following))
            following = next(stream, None)
    return runs, following


def _spilled(record: tuple[Any, ...]) -> tuple[Any, ...]:
    if len(record) == 4:
        return (record[1], record[2], marshal.dumps(record[3]))
    return record[1:]


def _compare_wide(
    c_group: list[SourceRecord],
    c: SourceRecord | None,
    source: Iterator[SourceRecord],
    p_group: list[Record],
    p: Record | None,
    target: Iterator[Record],
    add: Callable[[Diff], None],
    digest: Digest = None,
) -> tuple[tuple[int, int, int], SourceRecord | None, Record | None]:
    """Pair a wide token's rows by key through an external sort; (source rows, target
    rows, keys) and the next record of each stream."""
    c_runs, c = _spill_token(c_group, c, source)
    p_runs, p = _spill_token(p_group, p, target)
    with c_runs, p_runs:
        seen = _merge_by_key(c_runs.merged(), p_runs.merged(), add, digest)
        return (c_runs.count, p_runs.count, seen), c, p


def _merge_by_key(
    source: Iterator[tuple[bytes, bytes, bytes]],
    target: Iterator[tuple[bytes, bytes]],
    add: Callable[[Diff], None],
    digest: Digest = None,
) -> int:
    """Merge-join two key-sorted streams of (key, row); the number of keys."""
    keys = 0
    c = next(source, None)
    p = next(target, None)
    while c is not None or p is not None:
        keys += 1
        if p is None or (c is not None and c[0] < p[0]):
            assert c is not None
            add((c[0], c[1], (), _written(marshal.loads(c[2]))))
            c = next(source, None)
            continue
        key = p[0]
        rows = []
        while p is not None and p[0] == key:
            rows.append(p[1])
            p = next(target, None)
        if c is not None and c[0] == key:
            if not agree(c[1], tuple(rows), digest):
                add((key, c[1], tuple(rows), _written(marshal.loads(c[2]))))
            c = next(source, None)
        else:
            add((key, None, tuple(rows), None))
    return keys


def _compare_group(
    c_group: list[SourceRecord],
    p_group: list[Record],
    add: Callable[[Diff], None],
    digest: Digest = None,
) -> int:
    """Pair one token's rows by key, ``add`` each difference; the number of keys."""
    target: dict[bytes, list[bytes]] = {}
    for _, key, row in p_group:
        target.setdefault(key, []).append(row)
    keys = 0
    for _, key, row, raw in c_group:
        rows = tuple(target.pop(key, ()))
        keys += 1
        if not agree(row, rows, digest):
            add((key, row, rows, _written(raw)))
    for key, only_on_target in target.items():
        keys += 1
        add((key, None, tuple(only_on_target), None))
    return keys
