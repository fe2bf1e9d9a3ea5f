"""A job's verdict, defined once: its drift, the interval of an estimate, and its alert level.

Used when a job completes (``jobs.finalizer``) and each time the in-flight re-check adds a
difference to the job that found it (``ledger.inflight``).  A run that examined nothing is
inconclusive: no drift (not 0%) and no alert.  An estimate (SAMPLE) alerts only when even the
lower bound of its 95% interval passes a threshold, as the Prometheus rules judge it.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciliation.choices import AlertLevel, ValidationStrategy
from reconciliation.engine.drift import drift_percentage, wilson_interval
from reconciliation.models.mappings import Thresholds


@dataclass(frozen=True)
class Verdict:
    drift_percentage: float | None
    drift_ci_low: float | None
    drift_ci_high: float | None
    alert_level: str

    @property
    def alert_fired(self) -> bool:
        return self.alert_level != AlertLevel.NONE


def judge(
    strategy: str,
    keys_examined: int,
    drift: float | None,
    interval: tuple[float | None, float | None],
    thresholds: Thresholds,
) -> Verdict:
    """The verdict on a drift measured over ``keys_examined`` keys (``interval``: a SAMPLE's
    95% interval)."""
    if not keys_examined or drift is None:
        return Verdict(None, None, None, AlertLevel.NONE)
    low, high = interval
    estimate = strategy == ValidationStrategy.SAMPLE and low is not None
    judged = low if estimate else drift
    return Verdict(drift, low, high, thresholds.alert_level(judged))


def recount(
    strategy: str, mismatch_count: int, keys_examined: int, thresholds: Thresholds
) -> Verdict:
    """The verdict of a row-level job from its counts (drift, and a SAMPLE's interval)."""
    if not keys_examined:
        return judge(strategy, 0, None, (None, None), thresholds)
    interval: tuple[float | None, float | None] = (None, None)
    if strategy == ValidationStrategy.SAMPLE:
        interval = wilson_interval(mismatch_count, keys_examined)
    drift = drift_percentage(mismatch_count, keys_examined)
    return judge(strategy, keys_examined, drift, interval, thresholds)
