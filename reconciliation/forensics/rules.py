"""Why it drifted: groups and findings over a set of differences (pure: no Django, no stores).

``analyse(facts, ...)`` takes one ``Fact`` per difference (its type, key, partition, the source
row's write time and TTL, the columns that differ) and returns a ``Forensics``:

* **groups**: by mismatch type × write-time bucket (the bucket sized from the span of the
  write times: a minute up to 3 hours, an hour up to 7 days, else a day), by partition (the
  top partitions with their counts) and, for DATA_MISMATCH, by the set of differing columns;
* **findings**: a short list of plain sentences, each naming the rule that produced it and
  the numbers behind it.  The rules, in the order they are listed:

  ``in_flight``
      Differences recorded IN_FLIGHT (the source row was written within the table's CDC lag
      budget): not drift; each is read again once its budget has passed.
  ``ttl_expired``
      (a job only) differences whose source row's TTL ran out before they could be re-checked:
      not counted as differences.
  ``hot_partition``
      At least ``HOT_MIN`` differences, of which ``HOT_SHARE`` (80%) fall in at most
      ``HOT_MAX_PARTITIONS`` (5) partitions, each of those holding on average at least
      ``HOT_MIN_PER_PARTITION`` (4) differences: a table whose differences are one per
      partition (a one-column key) never has a hot partition.
  ``pipeline_gap``
      At least ``GAP_MIN`` MISSING_IN_POSTGRES with a write time, ``GAP_SHARE`` (90%) of them
      written within ``GAP_MAX_SPAN`` (30 minutes): rows the pipeline never copied during a
      window.  Not claimed when the differences are a hot partition (rows written together in
      one partition are that partition's story), nor when most of the rows carry a TTL (that
      is ``ttl_churn``).
  ``column_transform``
      At least ``TRANSFORM_MIN`` DATA_MISMATCH, ``TRANSFORM_SHARE`` (80%) of which differ in
      exactly the same columns: a transform that gets those columns wrong.  Not claimed for a
      hot partition either (the rows of a few partitions share their history).
  ``expired_in_cassandra``
      MISSING_IN_CASSANDRA whose copy says its source row expired by TTL by now (the
      pipeline's ``_cdc_expires_at`` bookkeeping column): an expiry is never in the commit log,
      so CDC cannot delete the copy. Not a pipeline fault.
  ``deletes_not_propagated``
      The other MISSING_IN_CASSANDRA: rows deleted (or expired by a TTL the copy does not
      record) in Cassandra and still in PostgreSQL.
  ``ttl_churn``
      At least ``TTL_MIN`` differences, half or more of those with a source row carrying a
      TTL: rows that expire in Cassandra, whose copies the pipeline does not expire.

Each rule looks for one pattern and states its evidence; a rule whose pattern is not clearly
there says nothing, so a planted cause yields its finding and no other.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from reconciliation.forensics.windows import (
    bucket_size,
    bucket_start,
    grown_window,
    narrowest_window,
)
from reconciliation.vocabulary import (
    DATA_MISMATCH,
    MISSING_IN_CASSANDRA,
    MISSING_IN_POSTGRES,
)

HOT_MIN = 10
HOT_SHARE = 0.8
HOT_MAX_PARTITIONS = 5
HOT_MIN_PER_PARTITION = 4
GAP_MIN = 5
GAP_SHARE = 0.9
GAP_MAX_SPAN = dt.timedelta(minutes=30)
TRANSFORM_MIN = 3
TRANSFORM_SHARE = 0.8
TTL_MIN = 3
TOP_PARTITIONS = 10
TOP_COLUMN_SETS = 10


@dataclass(frozen=True)
class Fact:
    """One difference, as forensics sees it."""

    mismatch_type: str
    partition: tuple[Any, ...]
    written_at: dt.datetime | None = None
    ttl_seconds: int | None = None
    #: DATA_MISMATCH: the columns whose values differ (None when unknown).
    differing: frozenset[str] | None = None
    in_flight: bool = False
    recheck_after: dt.datetime | None = None
    #: MISSING_IN_CASSANDRA: when the copy says its source row expires by TTL (None: unknown).
    copy_expires_at: dt.datetime | None = None


@dataclass
class Finding:
    rule: str
    message: str
    count: int
    mismatch_type: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class Forensics:
    total: int
    in_flight: int
    bucket: str
    by_type_and_time: list[dict[str, Any]]
    partitions: int
    by_partition: list[dict[str, Any]]
    by_column_set: list[dict[str, Any]]
    findings: list[Finding]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _clock(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")


def _columns(names: Iterable[str]) -> str:
    return ", ".join(f"`{name}`" for name in sorted(names))


# -- the rules ----------------------------------------------------------------------------------


def _in_flight(facts: Sequence[Fact]) -> Finding | None:
    flying = [f for f in facts if f.in_flight]
    if not flying:
        return None
    due = [f.recheck_after for f in flying if f.recheck_after is not None]
    when = f"; re-checked from {_clock(min(due))} UTC" if due else ""
    return Finding(
        "in_flight",
        f"{len(flying)} difference{'s are' if len(flying) != 1 else ' is'} in flight: the "
        f"source row was written within the CDC lag budget, so not drift (yet){when}.",
        len(flying),
        evidence={"recheck_from": min(due).isoformat() if due else None},
    )


def _ttl_expired(expired: int) -> Finding | None:
    if expired <= 0:
        return None
    return Finding(
        "ttl_expired",
        f"{expired} difference{'s' if expired != 1 else ''} were rows whose TTL in Cassandra "
        "ran out before they could be re-checked: not counted as differences.",
        expired,
    )


def _hot_partitions(facts: Sequence[Fact]) -> tuple[Finding | None, bool]:
    counts = Counter(f.partition for f in facts)
    total = len(facts)
    if total < HOT_MIN:
        return None, False
    held = 0
    top: list[tuple[tuple[Any, ...], int]] = []
    for partition, count in counts.most_common(HOT_MAX_PARTITIONS):
        top.append((partition, count))
        held += count
        if held >= HOT_SHARE * total:
            break
    if held < HOT_SHARE * total or held < HOT_MIN_PER_PARTITION * len(top):
        return None, False
    n = len(top)
    lead = "all" if held == total else f"{held} of"
    return (
        Finding(
            "hot_partition",
            f"{lead} {total} differences are in {n} partition{'s' if n != 1 else ''}: "
            + ", ".join(f"{_partition_text(p)} ({c})" for p, c in top)
            + ".",
            held,
            evidence={
                "partitions": [{"partition": list(p), "count": c} for p, c in top],
                "differences": total,
            },
        ),
        True,
    )


def _partition_text(partition: tuple[Any, ...]) -> str:
    return str(partition[0]) if len(partition) == 1 else "(" + ", ".join(map(str, partition)) + ")"


def _pipeline_gap(facts: Sequence[Fact]) -> Finding | None:
    missing = [f for f in facts if f.mismatch_type == MISSING_IN_POSTGRES and not f.in_flight]
    times = [f.written_at for f in missing if f.written_at is not None]
    if len(times) < GAP_MIN:
        return None
    if sum(1 for f in missing if f.ttl_seconds is not None) * 2 >= len(missing):
        return None  # rows that expire: ttl_churn's story
    start, end, inside = narrowest_window(times, GAP_SHARE)
    if end - start > GAP_MAX_SPAN:
        return None
    start, end, inside = grown_window(times, start, end, GAP_MAX_SPAN)
    # The window shown covers whole minutes: 10:00:12–10:04:51 reads as 10:00–10:05.
    shown_start = start.astimezone(dt.UTC).replace(second=0, microsecond=0)
    shown_end = end.astimezone(dt.UTC).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    return Finding(
        "pipeline_gap",
        f"{inside} of {len(missing)} {MISSING_IN_POSTGRES} were written "
        f"{_clock(shown_start)}–{shown_end:%H:%M} UTC: a gap in the pipeline.",
        inside,
        MISSING_IN_POSTGRES,
        evidence={
            "from": start.isoformat(),
            "to": end.isoformat(),
            "window_seconds": (end - start).total_seconds(),
            "missing": len(missing),
        },
    )


def _column_transform(facts: Sequence[Fact]) -> Finding | None:
    changed = [f for f in facts if f.mismatch_type == DATA_MISMATCH and f.differing]
    if len(changed) < TRANSFORM_MIN:
        return None
    columns, count = Counter(f.differing for f in changed).most_common(1)[0]
    assert columns is not None
    if count < TRANSFORM_SHARE * len(changed):
        return None
    return Finding(
        "column_transform",
        f"{count} of {len(changed)} {DATA_MISMATCH} differ only in {_columns(columns)}: "
        "a transform that gets "
        + ("this column" if len(columns) == 1 else "these columns")
        + " wrong.",
        count,
        DATA_MISMATCH,
        evidence={"columns": sorted(columns), "data_mismatches": len(changed)},
    )


def _copy_expired(fact: Fact, now: dt.datetime) -> bool:
    return (
        fact.mismatch_type == MISSING_IN_CASSANDRA
        and fact.copy_expires_at is not None
        and fact.copy_expires_at <= now
    )


def _expired_in_cassandra(facts: Sequence[Fact], now: dt.datetime) -> Finding | None:
    expired = [f for f in facts if _copy_expired(f, now)]
    if not expired:
        return None
    last = max(f.copy_expires_at for f in expired if f.copy_expires_at is not None)
    return Finding(
        "expired_in_cassandra",
        f"{len(expired)} {MISSING_IN_CASSANDRA} are rows whose TTL ran out in Cassandra (the "
        f"last at {_clock(last)} UTC, as their copies record): an expiry is not in the commit "
        "log, so the pipeline cannot delete the copies. Not a pipeline fault.",
        len(expired),
        MISSING_IN_CASSANDRA,
        evidence={"last_expired_at": last.isoformat()},
    )


def _deletes(facts: Sequence[Fact], now: dt.datetime) -> Finding | None:
    extra = sum(
        1 for f in facts if f.mismatch_type == MISSING_IN_CASSANDRA and not _copy_expired(f, now)
    )
    if not extra:
        return None
    return Finding(
        "deletes_not_propagated",
        f"{extra} {MISSING_IN_CASSANDRA}: rows deleted or expired in Cassandra and still in "
        "PostgreSQL.",
        extra,
        MISSING_IN_CASSANDRA,
    )


def _ttl_churn(facts: Sequence[Fact]) -> Finding | None:
    with_source = [f for f in facts if f.mismatch_type != MISSING_IN_CASSANDRA]
    timed = [f for f in with_source if f.ttl_seconds is not None]
    if len(timed) < TTL_MIN or len(timed) * 2 < len(with_source):
        return None
    shortest = min(f.ttl_seconds for f in timed if f.ttl_seconds is not None)
    return Finding(
        "ttl_churn",
        f"{len(timed)} of {len(with_source)} differences with a source row are rows with a "
        f"TTL in Cassandra (the first expires within {shortest} s): rows that expire there "
        "while their copies stay.",
        len(timed),
        evidence={"shortest_ttl_seconds": shortest},
    )


# -- the whole analysis ------------------------------------------------------------------------


def analyse(
    facts: Sequence[Fact], *, expired: int = 0, now: dt.datetime | None = None
) -> Forensics:
    """Groups and findings over ``facts`` (module docstring); ``expired``: a job's
    differences not counted because their source row's TTL ran out first; ``now``: the time
    copies' TTLs are judged against (default: the current time)."""
    now = now or dt.datetime.now(dt.UTC)
    times = [f.written_at for f in facts if f.written_at is not None]
    size = bucket_size(times)
    by_time = Counter(
        (f.mismatch_type, None if f.written_at is None else bucket_start(f.written_at, size))
        for f in facts
    )
    partitions = Counter(f.partition for f in facts)
    column_sets = Counter(
        f.differing for f in facts if f.mismatch_type == DATA_MISMATCH and f.differing
    )
    drift = [f for f in facts if not f.in_flight]
    hot, is_hot = _hot_partitions(drift)
    rules = [
        _in_flight(facts),
        _ttl_expired(expired),
        hot,
        None if is_hot else _pipeline_gap(drift),
        None if is_hot else _column_transform(drift),
        _expired_in_cassandra(drift, now),
        _deletes(drift, now),
        _ttl_churn(drift),
    ]
    return Forensics(
        total=len(facts),
        in_flight=sum(1 for f in facts if f.in_flight),
        bucket=size,
        by_type_and_time=[
            {
                "mismatch_type": kind,
                "bucket_start": None if start is None else start.isoformat(),
                "count": count,
            }
            for (kind, start), count in sorted(
                by_time.items(), key=lambda item: (item[0][1] is None, item[0][1] or 0, item[0][0])
            )
        ],
        partitions=len(partitions),
        by_partition=[
            {"partition": list(p), "count": c} for p, c in partitions.most_common(TOP_PARTITIONS)
        ],
        by_column_set=[
            {"columns": sorted(columns), "count": c}
            for columns, c in column_sets.most_common(TOP_COLUMN_SETS)
        ],
        findings=[finding for finding in rules if finding is not None],
    )
