"""The repair policy's pure rules: which types a policy may fix, the checks between its
fields, the audit's column-by-column changes and the summary's one line."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from reconciliation.choices import AutoRepairResult, RepairCap
from reconciliation.models import TableMapping
from reconciliation.repair.audit import column_changes
from reconciliation.repair.runs import describe_summary


def mapping(**fields: object) -> TableMapping:
    return TableMapping(name="orders", cassandra_table="orders", postgres_table="orders", **fields)


def test_the_types_follow_the_three_flags_and_extra_rows_are_off_by_default() -> None:
    assert mapping().repair_types == ["MISSING_IN_POSTGRES", "DATA_MISMATCH"]
    assert mapping(repair_data_mismatch=False, repair_extra_in_target=True).repair_types == [
        "MISSING_IN_POSTGRES",
        "MISSING_IN_CASSANDRA",
    ]


def test_a_policy_that_may_fix_nothing_is_refused_on_its_policy_field() -> None:
    table = mapping(repair_policy="on", repair_missing_in_target=False, repair_data_mismatch=False)
    with pytest.raises(ValidationError) as error:
        table.clean()
    assert list(error.value.message_dict) == ["repair_policy"]
    mapping(repair_missing_in_target=False, repair_data_mismatch=False).clean()  # off: fine


def test_more_repairs_per_run_than_per_hour_is_refused_on_the_per_run_field() -> None:
    with pytest.raises(ValidationError) as error:
        mapping(repair_max_per_run=11, repair_max_per_hour=10).clean()
    assert error.value.message_dict == {
        "repair_max_per_run": ["Repairs per run (11) must not exceed repairs per hour (10)."]
    }
    mapping(repair_max_per_run=10, repair_max_per_hour=10).clean()


def test_column_changes_name_each_changed_column_with_both_values() -> None:
    before = {"id": "a", "email": "old@x", "score": 1}
    assert column_changes(before, {"id": "a", "email": "new@x", "score": 1}) == {
        "email": {"before": "old@x", "after": "new@x"}
    }
    assert column_changes(None, {"id": "a"}) == {"id": {"before": None, "after": "a"}}
    assert column_changes(before, None) == {
        "id": {"before": "a", "after": None},
        "email": {"before": "old@x", "after": None},
        "score": {"before": 1, "after": None},
    }
    assert column_changes(before, dict(before)) == {}


def test_the_metric_results_and_caps_are_the_ones_documented() -> None:
    assert set(AutoRepairResult.values) == {"repaired", "would_repair", "skipped", "failed"}
    assert tuple(RepairCap.values) == ("per_run", "per_hour")


def test_the_summary_line_says_what_a_run_did() -> None:
    line = describe_summary(
        {
            "policy": "on",
            "status": "done",
            "dry_run": False,
            "eligible": 7,
            "repaired": 4,
            "skipped": {"equal_now": 1},
            "failed": 0,
            "capped": "per_run",
            "deferred": 2,
        }
    )
    assert line == (
        "on: 7 eligible, repaired 4; skipped 1 equal_now; failed 0; "
        "stopped at the per run cap, 2 left for later"
    )
    assert "would repair 3" in describe_summary(
        {"policy": "dry_run", "dry_run": True, "eligible": 3, "would_repair": 3}
    )
    assert "switched off" in describe_summary({"policy": "on", "status": "kill_switch"})
