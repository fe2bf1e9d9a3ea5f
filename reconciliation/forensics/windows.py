"""Time arithmetic for forensics (pure): the write-time histogram's buckets, and the
narrowest window that holds most of a set of write times (a pipeline gap's outage)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

MINUTE, HOUR, DAY = "minute", "hour", "day"


def bucket_size(times: Sequence[dt.datetime]) -> str:
    """The write-time histogram's bucket: a minute up to a 3-hour span, an hour up to 7 days,
    else a day."""
    if not times:
        return MINUTE
    span = max(times) - min(times)
    if span <= dt.timedelta(hours=3):
        return MINUTE
    if span <= dt.timedelta(days=7):
        return HOUR
    return DAY


def bucket_start(when: dt.datetime, size: str) -> dt.datetime:
    when = when.astimezone(dt.UTC)
    if size == MINUTE:
        return when.replace(second=0, microsecond=0)
    if size == HOUR:
        return when.replace(minute=0, second=0, microsecond=0)
    return when.replace(hour=0, minute=0, second=0, microsecond=0)


def narrowest_window(
    times: Sequence[dt.datetime], share: float
) -> tuple[dt.datetime, dt.datetime, int]:
    """The narrowest [start, end] holding at least ``share`` of ``times`` (and how many)."""
    ordered = sorted(times)
    need = max(1, -(-int(share * len(ordered) * 1000) // 1000))  # ceil, without float noise
    best = (ordered[0], ordered[-1])
    for i in range(len(ordered) - need + 1):
        start, end = ordered[i], ordered[i + need - 1]
        if end - start < best[1] - best[0]:
            best = (start, end)
    inside = sum(1 for t in ordered if best[0] <= t <= best[1])
    return best[0], best[1], inside


def grown_window(
    times: Sequence[dt.datetime], start: dt.datetime, end: dt.datetime, limit: dt.timedelta
) -> tuple[dt.datetime, dt.datetime, int]:
    """``[start, end]`` grown over the times just outside it (each within a fifth of the
    window's span, at least a minute, of its edge) while it stays within ``limit``: the
    narrowest 90% of a gap leaves out its own first and last rows, not strays hours away."""
    ordered = sorted(times)
    lo = next(i for i, t in enumerate(ordered) if t >= start)
    hi = max(i for i, t in enumerate(ordered) if t <= end)
    while True:
        reach = max(dt.timedelta(minutes=1), (ordered[hi] - ordered[lo]) / 5)
        grew = False
        if (
            lo > 0
            and ordered[lo] - ordered[lo - 1] <= reach
            and ordered[hi] - ordered[lo - 1] <= limit
        ):
            lo, grew = lo - 1, True
        if (
            hi < len(ordered) - 1
            and ordered[hi + 1] - ordered[hi] <= reach
            and ordered[hi + 1] - ordered[lo] <= limit
        ):
            hi, grew = hi + 1, True
        if not grew:
            return ordered[lo], ordered[hi], hi - lo + 1
