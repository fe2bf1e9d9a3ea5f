"""Drift percentages and the SAMPLE confidence interval."""

from __future__ import annotations

import pytest

from reconciliation.engine.drift import drift_percentage, row_count_drift, wilson_interval


def test_the_guides_example_gives_half_a_percent() -> None:
    # 1,000,000 rows in Cassandra, 995,000 in PostgreSQL, 5,000 mismatches.
    assert row_count_drift(1_000_000, 995_000) == 0.5
    assert drift_percentage(5_000, 1_000_000) == 0.5


def test_drift_is_mismatches_over_keys_examined() -> None:
    assert drift_percentage(3, 12) == 25.0
    assert drift_percentage(0, 10) == 0.0
    assert drift_percentage(10, 10) == 100.0


def test_drift_is_zero_when_both_sides_are_empty() -> None:
    assert drift_percentage(0, 0) == 0.0
    assert row_count_drift(0, 0) == 0.0


def test_row_count_drift_is_symmetric_and_relative_to_the_larger_side() -> None:
    assert row_count_drift(995_000, 1_000_000) == 0.5
    assert row_count_drift(0, 7) == 100.0
    assert row_count_drift(15, 10) == pytest.approx(100 * 5 / 15)


def test_the_wilson_interval_matches_known_values() -> None:
    # 1 in 10: the textbook 95% Wilson interval is (1.79%, 40.42%).
    low, high = wilson_interval(1, 10)
    assert low == pytest.approx(1.79, abs=0.01)
    assert high == pytest.approx(40.42, abs=0.01)


def test_the_wilson_interval_contains_the_estimate_and_narrows_with_more_keys() -> None:
    small = wilson_interval(50, 1_000)
    large = wilson_interval(5_000, 100_000)

    assert small[0] < 5.0 < small[1]
    assert large[0] < 5.0 < large[1]
    assert large[1] - large[0] < small[1] - small[0]


def test_the_wilson_interval_stays_within_0_and_100() -> None:
    assert wilson_interval(0, 20)[0] == 0.0
    assert 0.0 < wilson_interval(0, 20)[1] < 20.0
    assert wilson_interval(20, 20)[1] == 100.0
    assert wilson_interval(0, 0) == (0.0, 0.0)
