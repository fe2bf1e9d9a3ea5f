"""A job's verdict (reconciliation.ledger.verdict): drift, an estimate's interval, the alert."""

from __future__ import annotations

import pytest

from reconciliation.choices import AlertLevel
from reconciliation.choices import ValidationStrategy as S
from reconciliation.ledger.verdict import judge, recount
from reconciliation.models.mappings import Thresholds

LIMITS = Thresholds(warning=1.0, critical=5.0)


def test_a_run_that_examined_nothing_is_inconclusive() -> None:
    verdict = judge(S.CHECKSUM, 0, 0.0, (None, None), LIMITS)
    assert (verdict.drift_percentage, verdict.alert_level, verdict.alert_fired) == (
        None,
        AlertLevel.NONE,
        False,
    )
    assert recount(S.SAMPLE, 0, 0, LIMITS).drift_ci_low is None


def test_a_full_check_alerts_on_its_drift() -> None:
    assert judge(S.CHECKSUM, 1000, 5.5, (None, None), LIMITS).alert_level == AlertLevel.CRITICAL
    assert judge(S.CHECKSUM, 1000, 1.0, (None, None), LIMITS).alert_level == AlertLevel.NONE
    assert recount(S.CHECKSUM, 20, 1000, LIMITS).drift_percentage == pytest.approx(2.0)


def test_an_estimate_alerts_only_when_its_lower_bound_passes() -> None:
    # 2 of 100 sampled: 2% drift (a warning for a full check), but the interval starts below 1%.
    assert recount(S.CHECKSUM, 2, 100, LIMITS).alert_level == AlertLevel.WARNING
    verdict = recount(S.SAMPLE, 2, 100, LIMITS)
    assert verdict.drift_percentage == pytest.approx(2.0)
    assert verdict.drift_ci_low is not None and verdict.drift_ci_low < 1.0
    assert verdict.alert_level == AlertLevel.NONE
    assert recount(S.SAMPLE, 30, 100, LIMITS).alert_level == AlertLevel.CRITICAL
