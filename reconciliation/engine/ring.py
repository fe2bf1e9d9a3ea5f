"""The Murmur3 token ring ``(-2**63, 2**63 - 1]`` cut into contiguous ``(start, end]``
ranges: the segments a scan reads and the pieces a job is split into."""

from __future__ import annotations

from reconciliation.engine.records import MAX_TOKEN, MIN_TOKEN


def token_segments(count: int) -> list[tuple[int, int]]:
    """``count`` contiguous (start, end] ranges covering the whole Murmur3 ring, in order."""
    count = max(1, count)
    span = MAX_TOKEN - MIN_TOKEN
    bounds = [MIN_TOKEN + span * i // count for i in range(count)] + [MAX_TOKEN]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def split_range(start: int, end: int, count: int) -> list[tuple[int, int]]:
    """``(start, end]`` as ``count`` contiguous (start, end] ranges, in order (fewer when
    the range holds fewer tokens)."""
    count = max(1, min(count, end - start))
    bounds = [start + (end - start) * i // count for i in range(count)] + [end]
    return list(zip(bounds[:-1], bounds[1:], strict=True))
