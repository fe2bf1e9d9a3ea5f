"""The forensics rules (reconciliation/forensics/rules.py, windows.py): each planted cause gives its finding and
no other."""

from __future__ import annotations

import datetime as dt
import random

from reconciliation.forensics.rules import (
    DATA_MISMATCH,
    MISSING_IN_CASSANDRA,
    MISSING_IN_POSTGRES,
    Fact,
    analyse,
)
from reconciliation.forensics.windows import bucket_size, narrowest_window

T0 = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)
rng = random.Random(7)


def spread(n: int, hours: float = 72) -> list[dt.datetime]:
    return [T0 - dt.timedelta(seconds=rng.uniform(0, hours * 3600)) for _ in range(n)]


def rules(facts: list[Fact], **kwargs: int) -> list[str]:
    return [f.rule for f in analyse(facts, **kwargs).findings]


def test_a_five_minute_gap_is_a_pipeline_gap_and_nothing_else() -> None:
    facts = [
        Fact(MISSING_IN_POSTGRES, (f"s-{i}",), T0 + dt.timedelta(seconds=rng.uniform(0, 299)))
        for i in range(250)
    ]
    found = analyse(facts).findings
    assert [f.rule for f in found] == ["pipeline_gap"]
    assert found[0].count == 250
    assert "250 of 250 MISSING_IN_POSTGRES were written 2026-11-20 10:00–10:05 UTC" in (
        found[0].message
    )


def test_missing_rows_written_over_days_are_no_gap() -> None:
    facts = [Fact(MISSING_IN_POSTGRES, (f"s-{i}",), t) for i, t in enumerate(spread(40))]
    assert rules(facts) == []


def test_a_gap_with_a_few_strays_still_names_the_window() -> None:
    inside = [T0 + dt.timedelta(seconds=rng.uniform(0, 300)) for _ in range(95)]
    facts = [Fact(MISSING_IN_POSTGRES, (f"k{i}",), t) for i, t in enumerate(inside + spread(5))]
    found = analyse(facts).findings
    assert [f.rule for f in found] == ["pipeline_gap"]
    assert found[0].message.startswith("95 of 100")


def test_one_column_always_differing_is_a_transform_bug_and_nothing_else() -> None:
    facts = [
        Fact(DATA_MISMATCH, (f"u{i}",), t, differing=frozenset({"email"}))
        for i, t in enumerate(spread(8))
    ]
    found = analyse(facts).findings
    assert [f.rule for f in found] == ["column_transform"]
    assert "8 of 8 DATA_MISMATCH differ only in `email`" in found[0].message


def test_changes_in_many_different_columns_are_no_transform_bug() -> None:
    columns = ["a", "b", "c", "d"]
    facts = [
        Fact(DATA_MISMATCH, (f"u{i}",), T0, differing=frozenset({columns[i % 4]}))
        for i in range(12)
    ]
    assert "column_transform" not in rules(facts)


def test_differences_in_three_partitions_are_a_hot_partition_and_not_a_gap() -> None:
    # Written together, moments apart: the partition is the story, not the time.
    facts = [
        Fact(MISSING_IN_POSTGRES, (f"customer-{i % 3}",), T0 + dt.timedelta(seconds=i))
        for i in range(60)
    ]
    found = analyse(facts).findings
    assert [f.rule for f in found] == ["hot_partition"]
    assert found[0].message.startswith("all 60 differences are in 3 partitions")


def test_one_difference_per_partition_is_never_a_hot_partition() -> None:
    facts = [Fact(DATA_MISMATCH, (f"u{i}",), t) for i, t in enumerate(spread(5))]
    assert "hot_partition" not in rules(facts)


def test_rows_only_in_postgres_are_deletes_not_propagated() -> None:
    facts = [Fact(MISSING_IN_CASSANDRA, (f"u{i}",)) for i in range(5)]
    found = analyse(facts).findings
    assert [f.rule for f in found] == ["deletes_not_propagated"]
    assert found[0].message.startswith("5 MISSING_IN_CASSANDRA: rows deleted or expired")


def test_rows_only_in_postgres_whose_copies_say_they_expired_are_expired_not_lost_deletes() -> None:
    now = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
    expired = [
        Fact(MISSING_IN_CASSANDRA, (f"e{i}",), copy_expires_at=now - dt.timedelta(minutes=i))
        for i in range(4)
    ]
    not_yet = Fact(MISSING_IN_CASSANDRA, ("later",), copy_expires_at=now + dt.timedelta(hours=1))
    deleted = Fact(MISSING_IN_CASSANDRA, ("gone",))
    found = {f.rule: f for f in analyse([*expired, not_yet, deleted], now=now).findings}
    assert set(found) == {"expired_in_cassandra", "deletes_not_propagated"}
    assert found["expired_in_cassandra"].count == 4
    assert "Not a pipeline fault" in found["expired_in_cassandra"].message
    assert found["deletes_not_propagated"].count == 2  # deleted, and one not expired yet


def test_rows_with_a_ttl_are_ttl_churn_not_a_gap() -> None:
    facts = [
        Fact(MISSING_IN_POSTGRES, (f"s{i}",), T0 + dt.timedelta(seconds=i), ttl_seconds=3600 + i)
        for i in range(20)
    ]
    assert rules(facts) == ["ttl_churn"]


def test_in_flight_differences_are_reported_as_such_and_feed_no_other_rule() -> None:
    facts = [
        Fact(MISSING_IN_POSTGRES, (f"s{i}",), T0, in_flight=True, recheck_after=T0)
        for i in range(30)
    ]
    found = analyse(facts).findings
    assert [f.rule for f in found] == ["in_flight"]
    assert analyse(facts).in_flight == 30


def test_expired_differences_of_a_job_are_stated() -> None:
    assert rules([], expired=4) == ["ttl_expired"]
    assert rules([]) == []


def test_groups_by_type_time_partition_and_columns() -> None:
    facts = [
        Fact(MISSING_IN_POSTGRES, ("a",), T0),
        Fact(MISSING_IN_POSTGRES, ("a",), T0 + dt.timedelta(seconds=30)),
        Fact(DATA_MISMATCH, ("b",), T0 + dt.timedelta(minutes=2), differing=frozenset({"x"})),
        Fact(MISSING_IN_CASSANDRA, ("c",)),
    ]
    result = analyse(facts)
    assert result.bucket == "minute"
    assert result.by_type_and_time == [
        {"mismatch_type": MISSING_IN_POSTGRES, "bucket_start": T0.isoformat(), "count": 2},
        {
            "mismatch_type": DATA_MISMATCH,
            "bucket_start": (T0 + dt.timedelta(minutes=2)).isoformat(),
            "count": 1,
        },
        {"mismatch_type": MISSING_IN_CASSANDRA, "bucket_start": None, "count": 1},
    ]
    assert result.partitions == 3
    assert result.by_partition[0] == {"partition": ["a"], "count": 2}
    assert result.by_column_set == [{"columns": ["x"], "count": 1}]


def test_the_bucket_grows_with_the_span() -> None:
    assert bucket_size([T0, T0 + dt.timedelta(hours=2)]) == "minute"
    assert bucket_size([T0, T0 + dt.timedelta(days=2)]) == "hour"
    assert bucket_size([T0, T0 + dt.timedelta(days=30)]) == "day"
    assert bucket_size([]) == "minute"


def test_the_narrowest_window_holds_the_share() -> None:
    times = [T0 + dt.timedelta(minutes=m) for m in (0, 1, 2, 3, 100)]
    start, end, inside = narrowest_window(times, 0.8)
    assert (start, end, inside) == (T0, T0 + dt.timedelta(minutes=3), 4)
