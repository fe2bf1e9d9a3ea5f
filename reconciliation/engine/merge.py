"""The merge of two token-ordered record streams: which keys differ, and how.

Records are ``(token, key bytes, row bytes)`` (``records.py``).  A difference is
``(key bytes, source row bytes or None, (target row bytes, ...))``: the target side is a
tuple because a target table without a primary key may hold a key more than once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from reconciliation.engine.spill import Spool

Record = tuple[int, bytes, bytes]


# A difference found by a pass: (key bytes, Cassandra row bytes or None, target row bytes...)
# — a target without a primary key may hold a key more than once.
Diff = tuple[bytes, bytes | None, tuple[bytes, ...]]


def agree(cassandra_row: bytes | None, postgres_rows: tuple[bytes, ...]) -> bool:
    if cassandra_row is None:
        return not postgres_rows
    return len(postgres_rows) == 1 and postgres_rows[0] == cassandra_row


# -- the merge --------------------------------------------------------------------------------


@dataclass
class PassCounts:
    cassandra_rows: int = 0
    postgres_rows: int = 0
    keys: int = 0


def merge_by_token(
    source: Iterator[Record],
    target: Iterator[Record],
    differences: Spool,
    counts: PassCounts,
) -> None:
    """Walk two token-ordered record streams together, spooling every differing key.

    The common case, one row per token on each side, takes a fast path; a token with
    several rows (a partition with clustering rows, a token collision, a duplicated target
    key) is compared as a group, by key.
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
                    if c[2] != p[2]:
                        add((c[1], c[2], (p[2],)))
                else:  # a token collision between two different keys
                    keys += 2
                    add((c[1], c[2], ()))
                    add((p[1], None, (p[2],)))
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
        c_rows += len(c_group)
        p_rows += len(p_group)
        keys += _compare_group(c_group, p_group, add)
    while c is not None:  # the source's last tokens: not on the target
        group, c = _group(c, next(source, None), source)
        c_rows += len(group)
        keys += _compare_group(group, [], add)
    while p is not None:  # the target's last tokens: not in the source
        group, p = _group(p, next(target, None), target)
        p_rows += len(group)
        keys += _compare_group([], group, add)
    counts.cassandra_rows += c_rows
    counts.postgres_rows += p_rows
    counts.keys += keys


def _group(
    first: Record,
    following: Record | None,
    stream: Iterator[Record],
) -> tuple[list[Record], Record | None]:
    """``first`` and the records after it with the same token; and the next record."""
    group = [first]
    while following is not None and following[0] == first[0]:
        group.append(following)
        following = next(stream, None)
    return group, following


def _compare_group(
    c_group: list[Record],
    p_group: list[Record],
    add: Callable[[Diff], None],
) -> int:
    """Pair one token's rows by key, ``add`` each difference; the number of keys."""
    target: dict[bytes, list[bytes]] = {}
    for _, key, row in p_group:
        target.setdefault(key, []).append(row)
    keys = 0
    for _, key, row in c_group:
        rows = tuple(target.pop(key, ()))
        keys += 1
        if not agree(row, rows):
            add((key, row, rows))
    for key, only_on_target in target.items():
        keys += 1
        add((key, None, tuple(only_on_target)))
    return keys
