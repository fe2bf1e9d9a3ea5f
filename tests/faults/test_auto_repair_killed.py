"""A worker SIGKILLed in the middle of a table's repair policy (``reconciliation.auto_repair``,
acks_late + reject_on_worker_lost): every repair made before the kill is committed, audited
column by column and recorded as the policy's action; every other difference is still open
(at most one audit entry is left "started", that of the row being repaired at the kill);
and the redelivered task carries on from there and finishes the repair, nothing written or
audited twice, the killed attempt's entry closed as ABANDONED.

The worker's main process is stopped (SIGSTOP) for the instant of the kill, so that the
redelivered run cannot start before the test has looked at what the killed one left; it is
continued right after.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from tests.faults.conftest import Driver, PrivateStack, Worker, is_dead, measure
from tests.support import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

# About 80 ms a repair on one pool process: the run lasts some 25 s, the kill comes ~2 s in.
IN_CASSANDRA = 500  # user-0 .. user-499 in Cassandra
IN_POSTGRES = 250  # user-0 .. user-249 in PostgreSQL: 250 rows MISSING_IN_POSTGRES
STALE = 60  # user-0 .. user-59 with a stale email in PostgreSQL: DATA_MISMATCH
EXTRA = 20  # extra-0 .. extra-19 in PostgreSQL only: MISSING_IN_CASSANDRA
PLANTED = (IN_CASSANDRA - IN_POSTGRES) + STALE + EXTRA
REPAIRED_BEFORE_KILL = 20

POLICY = {
    "repair_policy": "on",
    "repair_missing_in_target": True,
    "repair_data_mismatch": True,
    "repair_extra_in_target": True,
    "repair_min_age_seconds": 0,
    "repair_max_per_run": 100_000,
    "repair_max_per_hour": 100_000,
}
EXPECTED_ACTION = {
    "MISSING_IN_POSTGRES": "upserted",
    "DATA_MISMATCH": "upserted",
    "MISSING_IN_CASSANDRA": "deleted",
}


def plant(stack: PrivateStack, users_table: Callable[[int, int], str]) -> str:
    table = users_table(IN_CASSANDRA, IN_POSTGRES)
    with psycopg.connect(stack.target_url, autocommit=True) as conn:
        conn.execute(
            f"UPDATE public.{table} SET email = 'stale-' || email WHERE id = ANY(%s)",
            ([f"user-{i}" for i in range(STALE)],),
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO public.{table} (id, email) VALUES (%s, %s)",
                [(f"extra-{i}", f"x{i}@example.com") for i in range(EXTRA)],
            )
    return table


def source_rows() -> dict[str, str]:
    return {f"user-{i}": f"u{i}@example.com" for i in range(IN_CASSANDRA)}


def target_rows(stack: PrivateStack, table: str) -> dict[str, str]:
    with psycopg.connect(stack.target_url, autocommit=True) as conn:
        return dict(conn.execute(f"SELECT id, email FROM public.{table}").fetchall())


def fixed(key: str, target: dict[str, str], source: dict[str, str]) -> bool:
    """Is the target row of ``key`` what the source says (absent when the source has none)?"""
    return target.get(key) == source.get(key)


def repair_state(driver: Driver, job_id: str, table: str) -> dict[str, Any]:
    state = driver.call(cmd="repair_state", job_id=job_id, table=table)
    assert "mismatches" in state, state
    return state


def completed_entries(state: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    by_mismatch: dict[str, list[dict[str, Any]]] = {}
    for entry in state["audit"]:
        if entry["completed"] and entry["postgres_status"] != "ABANDONED":
            by_mismatch.setdefault(entry["mismatch_id"], []).append(entry)
    return by_mismatch


def started_entries(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry for entry in state["audit"] if not entry["completed"]]


def check_repaired(
    state: dict[str, Any], job_id: str, table: str, target: dict[str, str]
) -> set[str]:
    """Every AUTO_REPAIRED mismatch: one completed audit entry (the policy's, this job's,
    column by column), one ``repaired`` action pointing at it, and its target row fixed.
    Returns the AUTO_REPAIRED mismatches' ids."""
    source = source_rows()
    completed = completed_entries(state)
    repaired_actions: dict[str, list[dict[str, Any]]] = {}
    for action in state["actions"]:
        if action["result"] == "repaired":
            repaired_actions.setdefault(action["mismatch_id"], []).append(action)
    repaired = {m["id"]: m for m in state["mismatches"] if m["status"] == "AUTO_REPAIRED"}
    for mismatch_id, mismatch in repaired.items():
        key = mismatch["key"]
        assert mismatch["resolved_by"] == f"policy:{table}", mismatch
        entries = completed.get(mismatch_id, [])
        assert len(entries) == 1, (mismatch, entries)  # audited, and written once
        (entry,) = entries
        assert entry["key"] == key, (mismatch, entry)
        assert entry["action"] == EXPECTED_ACTION[mismatch["type"]], (mismatch, entry)
        assert entry["postgres_status"] == "SUCCESS", (mismatch, entry)
        assert entry["requester"] == f"policy:{table}", entry
        assert (entry["policy"], entry["job_id"]) == ("on", job_id), entry
        column = "id" if mismatch["type"] != "DATA_MISMATCH" else "email"
        assert column in (entry["columns"] or {}), entry  # column by column
        assert fixed(key, target, source), (mismatch, target.get(key), source.get(key))
        actions = repaired_actions.get(mismatch_id, [])
        assert len(actions) == 1, (
            f"mismatch {mismatch_id} ({key}) is AUTO_REPAIRED with a completed audit entry "
            f"but has {len(actions)} 'repaired' AutoRepairAction row(s) for job {job_id}: "
            "the resolution and the action are not committed together",
            mismatch,
            actions,
        )
        assert actions[0]["audit_entry"] == entry["id"], (actions, entry)
    # ... and no action or completed entry for a difference that is not repaired.
    assert set(repaired_actions) <= set(repaired), set(repaired_actions) - set(repaired)
    assert set(completed) <= set(repaired), {
        k: completed[k] for k in set(completed) - set(repaired)
    }
    return set(repaired)


def freeze_and_kill(worker: Worker) -> int:
    """Stop the worker's main process, SIGKILL its pool child (the one running the policy).
    The caller continues the main process (``thaw``)."""
    (child,) = worker.pool_children()
    os.kill(worker.process.pid, signal.SIGSTOP)
    os.kill(child, signal.SIGKILL)
    wait_until(lambda: is_dead(child), 10, "the pool child died")
    # Its sessions end with it: a COMMIT it had already sent lands now, nothing after it.
    time.sleep(1.0)
    return child


def test_a_worker_killed_mid_repair_leaves_every_repair_audited_and_the_redelivery_finishes(
    private_stack: PrivateStack, driver: Driver, workers: list[Worker], users_table
) -> None:
    worker = workers[0]
    table = plant(private_stack, users_table)
    job_id = driver.enqueue(table, "CHECKSUM", worker.queue, mapping=POLICY)
    job = driver.wait_for(job_id, lambda j: j["status"] != "RUNNING", 120, "finished")
    assert job["status"] == "COMPLETED", job
    assert job["mismatch_count"] == PLANTED, job

    # -- mid-run: some repairs made, the run not finished ------------------------------------
    def mid_run() -> dict[str, Any] | None:
        state = repair_state(driver, job_id, table)
        assert state["summary"] is None, (
            f"the repair run finished before it could be killed ({state['summary']}): "
            "plant more differences"
        )
        done = sum(a["result"] == "repaired" for a in state["actions"])
        return state if done >= REPAIRED_BEFORE_KILL else None

    wait_until(mid_run, 120, f"{REPAIRED_BEFORE_KILL} repairs made by the policy")
    child = freeze_and_kill(worker)
    try:
        killed_at = time.monotonic()
        after_kill = repair_state(driver, job_id, table)
        target = target_rows(private_stack, table)
    finally:
        os.kill(worker.process.pid, signal.SIGCONT)  # the redelivery may start now

    # -- what the killed run left ------------------------------------------------------------
    assert after_kill["summary"] is None, after_kill["summary"]  # really killed mid-run
    statuses = Counter(m["status"] for m in after_kill["mismatches"])
    assert sum(statuses.values()) == PLANTED, statuses
    assert set(statuses) <= {"AUTO_REPAIRED", "PENDING"}, statuses
    assert statuses["AUTO_REPAIRED"] >= REPAIRED_BEFORE_KILL, statuses
    assert statuses["PENDING"] > 0, statuses
    check_repaired(after_kill, job_id, table, target)
    # At most one attempt was in progress, and its difference is still open.
    by_id = {m["id"]: m for m in after_kill["mismatches"]}
    started = started_entries(after_kill)
    assert len(started) <= 1, started
    for entry in started:
        assert entry["action"] == "started" and entry["postgres_status"] == "PENDING", entry
        assert by_id[entry["mismatch_id"]]["status"] == "PENDING", entry
    # An open difference's target row is untouched, but for the one being repaired at the
    # kill (its target may have committed, the app database not yet).
    source = source_rows()
    already_fixed = [
        m
        for m in after_kill["mismatches"]
        if m["status"] == "PENDING" and fixed(m["key"], target, source)
    ]
    assert len(already_fixed) <= 1, already_fixed
    for mismatch in already_fixed:
        assert [e["mismatch_id"] for e in started] == [mismatch["id"]], (mismatch, started)
    assert not [a for a in after_kill["actions"] if a["result"] != "repaired"], after_kill[
        "actions"
    ]

    # -- the redelivered task finishes the repair --------------------------------------------
    def finished() -> dict[str, Any] | None:
        state = repair_state(driver, job_id, table)
        return state if state["summary"] is not None else None

    final = wait_until(finished, 180, "the redelivered repair run wrote its summary")
    measure("auto_repair_kill_to_done", time.monotonic() - killed_at)
    wait_until(lambda: worker.pool_children() not in ([], [child]), 30, "a new pool process")
    summary = final["summary"]
    assert summary["status"] == "done", summary
    target = target_rows(private_stack, table)
    assert target == source, {
        key: (target.get(key), source.get(key))
        for key in set(target) | set(source)
        if target.get(key) != source.get(key)
    }
    statuses = Counter(m["status"] for m in final["mismatches"])
    assert sum(statuses.values()) == PLANTED, statuses
    assert set(statuses) <= {"AUTO_REPAIRED", "AUTO_RESOLVED"}, statuses
    assert statuses["AUTO_RESOLVED"] <= 1, statuses
    repaired = check_repaired(final, job_id, table, target)
    assert summary["repaired"] == len(repaired) == statuses["AUTO_REPAIRED"], (summary, statuses)
    # Its target was written before the kill, its mismatch not closed: equal now, closed.
    closed_equal = [m for m in final["mismatches"] if m["status"] == "AUTO_RESOLVED"]
    for mismatch in closed_equal:
        assert mismatch["id"] in [m["id"] for m in already_fixed], mismatch
        skipped = [a for a in final["actions"] if a["mismatch_id"] == mismatch["id"]]
        assert [(a["result"], a["reason"]) for a in skipped] == [("skipped", "equal_now")], skipped
    assert summary["skipped"] == ({"equal_now": len(closed_equal)} if closed_equal else {}), summary
    assert (summary["failed"], summary["deferred"], summary["capped"]) == (0, 0, None), summary
    assert summary["eligible"] == PLANTED == len(final["actions"]), summary
    # The killed attempt's entry is closed as ABANDONED by the resumed run (the audit log is
    # append-only: completed, not removed); nothing is left started, and nothing was audited
    # as completed twice (checked above, per mismatch).
    assert not started_entries(final), started_entries(final)
    abandoned = [e for e in final["audit"] if e["postgres_status"] == "ABANDONED"]
    assert [e["id"] for e in abandoned] == [e["id"] for e in started], abandoned
    assert all(e["action"] == "abandoned" and e["completed"] for e in abandoned), abandoned
