"""The pure parts of lag-aware verdicts: a row's write time and TTL from Cassandra's summary,
which columns have a write time, and the in-flight decision."""

from __future__ import annotations

import pytest

from reconciliation.engine.cqlselect import has_write_time, write_time_selectors
from reconciliation.engine.cqltypes import parse_cql_type
from reconciliation.engine.lag import (
    DRIFT,
    EXPIRED,
    FIXED_DELAY,
    IN_FLIGHT,
    MARGIN_SECONDS,
    READ_AGAIN,
    lag_verdict,
)
from reconciliation.engine.records import source_write
from reconciliation.engine.schema import Column

NOW = 1_800_000_000.0
BUDGET = 60.0


def micros(seconds: float) -> int:
    return int(seconds * 1_000_000)


# -- a row's write time and TTL ---------------------------------------------------------------


def test_a_row_written_without_ttl_has_its_latest_write_time_and_no_expiry() -> None:
    assert source_write((micros(NOW - 5), None), NOW) == (micros(NOW - 5), None)


def test_a_row_whose_every_live_cell_has_a_ttl_expires_with_its_longest_lived_cell() -> None:
    assert source_write((micros(NOW), 900), NOW) == (micros(NOW), NOW + 900)


def test_one_cell_without_a_ttl_keeps_the_row_alive() -> None:
    # a TTL'd insert, then one column updated without a TTL: Cassandra's summary is the
    # largest TTL minus a billion per such cell (negative), and the row never expires
    assert source_write((micros(NOW), 486 - 1_000_000_000), NOW) == (micros(NOW), None)


@pytest.mark.parametrize("raw", [None, (None, None), (None, 5)])
def test_a_row_without_a_live_regular_cell_has_no_write_time(raw) -> None:
    assert source_write(raw, NOW) is None


# -- which columns have one ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cql", "has_one"),
    [
        ("text", True),
        ("int", True),
        ("frozen<list<int>>", True),
        ("frozen<map<text, int>>", True),
        ("tuple<int, text>", True),
        ("list<int>", False),
        ("set<text>", False),
        ("map<text, int>", False),
        ("counter", False),
    ],
)
def test_only_single_cell_columns_have_a_write_time(cql: str, has_one: bool) -> None:
    assert has_write_time(parse_cql_type(cql)) is has_one


def _column(name: str, cql: str) -> Column:
    return Column(
        name=name,
        cql_type=parse_cql_type(cql),
        pg_type="text",
        pg_oid=25,
        pg_format="text",
        pg_native=True,
    )


def test_the_summary_selects_two_values_over_the_columns_with_a_write_time() -> None:
    selectors = write_time_selectors(
        [_column("email", "text"), _column("tags", "set<text>"), _column("score", "int")]
    )

    assert selectors == [
        "collection_max([writetime(email), writetime(score)])",
        "collection_max([ttl(email), ttl(score)]) - "
        "(collection_sum([writetime(email) * 0 + 1, writetime(score) * 0 + 1]) - "
        "collection_sum([ttl(email) * 0 + 1, ttl(score) * 0 + 1])) * 1000000000",
    ]


def test_a_table_with_only_collections_has_no_write_time_summary() -> None:
    assert (
        write_time_selectors([_column("tags", "set<text>"), _column("m", "map<text, int>")]) == []
    )
    assert write_time_selectors([]) == []


# -- the decision -------------------------------------------------------------------------------


def verdict(kind: str = "MISSING_IN_POSTGRES", wrote: float | None = NOW, **options):
    written = None if wrote is None else (micros(wrote), options.pop("expires", None))
    defaults = {"now": NOW, "budget": BUDGET, "reads_began_at": NOW - 10}
    return lag_verdict(kind, written, **{**defaults, **options})


def test_a_row_written_within_the_budget_is_in_flight_until_the_budget_has_passed() -> None:
    found = verdict(wrote=NOW - 20)

    assert found.kind == IN_FLIGHT
    assert found.recheck_after == pytest.approx(NOW - 20 + BUDGET + MARGIN_SECONDS)


@pytest.mark.parametrize("kind", ["MISSING_IN_POSTGRES", "DATA_MISMATCH"])
def test_missing_and_changed_rows_can_be_in_flight(kind: str) -> None:
    assert verdict(kind, wrote=NOW - 1).kind == IN_FLIGHT


def test_a_row_written_long_before_the_reads_is_drift_at_once() -> None:
    assert verdict(wrote=NOW - 3 * 3600).kind == DRIFT


def test_a_row_in_flight_when_read_whose_budget_passed_since_is_read_again() -> None:
    # written 70 s ago; the reads began 50 s ago, when it was 20 s old
    assert verdict(wrote=NOW - 70, reads_began_at=NOW - 50).kind == READ_AGAIN


def test_a_row_whose_ttl_runs_out_before_its_recheck_is_not_a_difference() -> None:
    assert verdict(wrote=NOW - 1, expires=NOW + 5).kind == EXPIRED
    assert verdict(wrote=NOW - 1, expires=NOW + 3600).kind == IN_FLIGHT
    assert verdict(wrote=NOW - 3600, expires=NOW - 1).kind == EXPIRED  # gone already


def test_without_a_write_time_or_for_a_row_missing_in_cassandra_the_fixed_delay_applies() -> None:
    assert verdict(wrote=None).kind == FIXED_DELAY
    assert verdict("MISSING_IN_CASSANDRA", wrote=NOW).kind == FIXED_DELAY


def test_a_write_time_in_the_future_waits_one_budget_and_never_twice() -> None:
    future = NOW + 10 * 365 * 86400  # a client clock far ahead, or USING TIMESTAMP
    first = verdict(wrote=future)
    assert first.kind == IN_FLIGHT
    assert first.recheck_after == pytest.approx(NOW + BUDGET + MARGIN_SECONDS)

    again = verdict(wrote=future, waited_for=micros(future), reads_began_at=NOW)
    assert again.kind == DRIFT
    assert verdict(wrote=future + 1, waited_for=micros(future)).kind == IN_FLIGHT  # a new write
