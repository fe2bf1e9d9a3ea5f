"""What ``bench/run.py`` measured, and its report: the results table, the ratios against the
floor and the peer, the write-time cost and the read-rate cap's verdict, each against its goal."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dataset

# Every measure that must find every planted difference.
FULL_COMPARISONS = (
    "CHECKSUM_no_write_times",
    "CHECKSUM",
    "CHECKSUM_1w",
    "CHECKSUM_2w",
    "CHECKSUM_2w_capped",
    "reladiff",
)

WRITE_TIME_COST_GOAL = 0.10
TARGETS = {"scaling": 1.5, "floor": 1.2, "rss_mb": 300}
#: A capped job must read Cassandra at no more than this many times its cap.
RATE_CAP_TOLERANCE = 1.10


@dataclass
class Result:
    name: str
    runs: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)
    label: str = ""

    @property
    def seconds(self) -> float:
        return min(self.runs)

    @property
    def peak_rss_mb(self) -> float:
        return max(self.rss)

    @property
    def fastest(self) -> dict[str, Any]:
        return self.details[self.runs.index(self.seconds)]


def rate_cap_held(result: Result) -> bool:
    """Did every run of the capped measure read at no more than 1.1x its cap?"""
    cap = result.details[0]["rate_cap"]
    rates = [d.get("source_rows_per_second") or 0.0 for d in result.details]
    return max(rates) <= RATE_CAP_TOLERANCE * cap


def rate_cap_verdict(result: Result) -> Iterator[str]:
    """The cap, each run's measured read rate and its ratio to the cap, and the verdict."""
    cap = result.details[0]["rate_cap"]
    rates = [d.get("source_rows_per_second") or 0.0 for d in result.details]
    verdict = (
        "every run holds within 10% of its cap"
        if rate_cap_held(result)
        else "EXCEEDS its cap by more than 10%"
    )
    yield (
        f"read-rate cap: {cap:,} rows/s; CHECKSUM_2w_capped read Cassandra at "
        f"{', '.join(f'{r:,.0f}' for r in rates)} rows/s = "
        f"{', '.join(f'{r / cap:.2f}' for r in rates)} x the cap: {verdict}"
    )


def check_differences(result: Result, expected: dict[str, int]) -> str | None:
    """None when every run found exactly the planted differences, else what differed."""
    wrong = [d["by_type"] for d in result.details if d.get("by_type", expected) != expected]
    return f"found {wrong[0]}, planted {expected}" if wrong else None


def number(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def describe(result: Result) -> str:
    detail = result.fastest
    if result.name == "floor_cassandra":
        return f"{result.label}; rows={detail['rows']:,}"
    if result.name == "floor_postgres":
        return f"{detail['bytes'] / 2**20:.0f} MiB"
    if result.name == "reladiff":
        return f"source {detail['rows_source']:,}, target {detail['rows_target']:,} rows"
    parts = [f"C* {number(detail['cassandra_rows'])}", f"PG {number(detail['postgres_rows'])}"]
    if detail.get("mismatches") is not None:
        parts.append(f"mismatches {number(detail['mismatches'])}")
    if detail.get("segments"):
        parts.append(f"segments {sum(detail['segments'].values())}")
    for index, worker in enumerate(detail.get("workers") or [], 1):
        parts.append(f"w{index} {worker['processes']} (PSS {worker['pss_mb']})")
    return "; ".join(parts)


def report(
    rows: int,
    repeats: int,
    results: dict[str, Result],
    sweep: list[tuple[str, float]],
    loads: tuple[str, str],
) -> Iterator[str]:
    expected = dataset.expected_differences(rows)
    floor = results["floor_cassandra"].seconds if "floor_cassandra" in results else None
    yield ""
    yield (
        f"cdcrecon benchmark: {rows:,} rows x 10 columns; cpus {os.cpu_count()}; "
        f"min of {repeats} runs; load average {loads[0]} at the start, {loads[1]} at the end"
    )
    if sweep:
        yield "\nCassandra floor, configurations tried (one run each):\n"
        for label, seconds in sorted(sweep, key=lambda item: item[1]):
            yield f"    {seconds:6.2f} s  {label}"
    yield ""
    yield "| measure | min s | rows/s | peak RSS MB | ratio (÷ C* floor) | runs s | detail |"
    yield "|---|---:|---:|---:|---:|---|---|"
    for name, result in results.items():
        ratio = f"{result.seconds / floor:.2f}" if floor else "-"
        runs = ", ".join(f"{s:.2f}" for s in result.runs)
        yield (
            f"| {name} | {result.seconds:.2f} | {rows / result.seconds:,.0f} | "
            f"{result.peak_rss_mb:.0f} | {ratio} | {runs} | {describe(result)} |"
        )
    yield ""
    yield from ratios(results, floor)
    for name, result in results.items():
        if name in FULL_COMPARISONS:
            problem = check_differences(result, expected)
            yield f"{name}: differences {problem or 'exactly as planted, every run'}"


def write_time_cost(results: dict[str, Result]) -> Iterator[str]:
    """Issue 18: what reading each source row's write time and TTL costs CHECKSUM (one
    process, minimum of the runs with and without)."""
    with_them, without = results.get("CHECKSUM"), results.get("CHECKSUM_no_write_times")
    if with_them and without:
        cost = with_them.seconds / without.seconds - 1
        ok = "meets" if cost <= WRITE_TIME_COST_GOAL else "MISSES"
        yield (
            f"write-time cost: CHECKSUM {with_them.seconds:.2f} s with write times, "
            f"{without.seconds:.2f} s without = {100 * cost:+.1f}% "
            f"({ok} the goal of <= {100 * WRITE_TIME_COST_GOAL:.0f}%)"
        )


def ratios(results: dict[str, Result], floor: float | None) -> Iterator[str]:
    yield from write_time_cost(results)
    one, two = results.get("CHECKSUM_1w"), results.get("CHECKSUM_2w")
    peer, pg_floor = results.get("reladiff"), results.get("floor_postgres")

    def verdict(ok: bool) -> str:
        return "meets the target" if ok else "MISSES the target"

    if one and two:
        scaling = one.seconds / two.seconds
        yield (
            f"2 workers ÷ 1 worker throughput = {scaling:.2f} "
            f"(target >= {TARGETS['scaling']}: {verdict(scaling >= TARGETS['scaling'])})"
        )
    if one and floor:
        ratio = one.seconds / floor
        yield (
            f"CHECKSUM (1 worker) ÷ Cassandra floor = {ratio:.2f} "
            f"(target <= {TARGETS['floor']}: {verdict(ratio <= TARGETS['floor'])})"
        )
        if pg_floor:
            both = floor + pg_floor.seconds
            yield f"CHECKSUM (1 worker) ÷ (Cassandra floor + PostgreSQL floor) = {one.seconds / both:.2f}"
    for result in (one, two):
        if result:
            rss = result.peak_rss_mb
            yield (
                f"{result.name} peak RSS per worker = {rss:.0f} MB "
                f"(target <= {TARGETS['rss_mb']}: {verdict(rss <= TARGETS['rss_mb'])})"
            )
    capped = results.get("CHECKSUM_2w_capped")
    if two and capped:
        uncapped_rate = two.fastest.get("source_rows_per_second")
        if uncapped_rate:
            yield f"CHECKSUM_2w read Cassandra at {uncapped_rate:,.0f} rows/s (uncapped)"
    if capped:
        yield from rate_cap_verdict(capped)
    if peer:
        for result in (one, two, results.get("CHECKSUM")):
            if result:
                yield f"{result.name} ÷ reladiff = {result.seconds / peer.seconds:.2f}"
