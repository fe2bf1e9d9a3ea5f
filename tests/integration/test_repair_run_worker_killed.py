"""A bulk repair run whose whole worker dies: the worker's MAIN process is SIGKILLed mid-run
(its pool process dies with it: Celery sets it a parent-death signal), so nothing
acknowledges or rejects the task; the broker gives it to the next worker once the visibility
timeout has passed (CELERY_VISIBILITY_TIMEOUT_SECONDS, 6 s here).  Meanwhile the job shows
the run as running, then interrupted, with its progress; a new worker resumes it, finishes
it, makes every repair exactly once (a trigger on the target table counts the writes) and
closes the lost attempt's audit entry as ABANDONED.

The workers here use a Redis database of their own (CDCRECON_TEST_REPAIR_BROKER_URL): a
short visibility timeout restores every unacknowledged message of its database, which must
not be another run's.  The pool process is stopped (SIGSTOP) for the instant before the
kill, so that the kill lands while a repair is under way (its audit entry open).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from django.urls import reverse

from gdpr.models import AuditLogEntry, StoreStatus
from reconciliation.choices import JobStatus, ResolutionStatus, ValidationStrategy
from reconciliation.jobs import create_job, run_in_process
from reconciliation.jobs.queue import AUTO_REPAIR
from reconciliation.models import AutoRepairAction, Mismatch, ReconciliationJob
from tests.integration.conftest import target_writes as writes
from tests.support import REPO, celery_worker_command, child_env, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(420)]

BROKER_URL = os.environ.get("CDCRECON_TEST_REPAIR_BROKER_URL", "redis://127.0.0.1:6379/5")
VISIBILITY_TIMEOUT = 6
COLUMNS = "id text PRIMARY KEY, email text"
IN_CASSANDRA = 400  # user-0 .. user-399
IN_POSTGRES = 100  # user-0 .. user-99: 300 MISSING_IN_POSTGRES
STALE = 30  # user-0 .. user-29 with a stale email: DATA_MISMATCH
PLANTED = IN_CASSANDRA - IN_POSTGRES + STALE
MADE_BEFORE_KILL = 20


class Worker:
    """A real prefork worker (one pool process) on this test's queue and broker."""

    def __init__(self, queue: str, name: str, log_dir: Path) -> None:
        self.log_path = log_dir / f"worker-{name}.log"
        env = child_env(
            CELERY_BROKER_URL=BROKER_URL,
            CELERY_VISIBILITY_TIMEOUT_SECONDS=str(VISIBILITY_TIMEOUT),
        )
        command = celery_worker_command(queue, f"repair-kill-{name}-{os.getpid()}@%h")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(self._ready, 120, f"worker {name} did not start; its log: {self.log_path}")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"the worker exited:\n{self.log_path.read_text()}", pytrace=False)
        return b" ready." in self.log_path.read_bytes()

    def pool_children(self) -> list[int]:
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True
        ).stdout
        return [int(pid) for pid in out.split()]

    def stop(self) -> None:
        """Warm shutdown; the worker's whole process group if it does not stop."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
                return
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # its own group: never anyone else's
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)


def is_dead(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def plant(table_pair: Any, cassandra: Any, target: Any) -> Any:
    mapping = table_pair(
        COLUMNS,
        COLUMNS,
        repair_policy="on",
        repair_min_age_seconds=0,
        repair_max_per_run=100_000,
        repair_max_per_hour=100_000,
    )
    insert = cassandra.prepare(f"INSERT INTO {mapping.cassandra_table} (id, email) VALUES (?, ?)")
    for i in range(IN_CASSANDRA):
        cassandra.execute(insert, (f"user-{i}", f"u{i}@example.com"))
    with target.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO public.{mapping.postgres_table} (id, email) VALUES (%s, %s)",
            [
                (f"user-{i}", f"stale-u{i}@example.com" if i < STALE else f"u{i}@example.com")
                for i in range(IN_POSTGRES)
            ],
        )
    return mapping


def run_state(job_id: Any) -> dict[str, Any]:
    return ReconciliationJob.objects.values_list("repair_run", flat=True).get(pk=job_id) or {}


def open_entries(job_id: Any) -> list[AuditLogEntry]:
    return list(
        AuditLogEntry.objects.filter(completed_at__isnull=True, details__job_id=str(job_id))
    )


def kill_mid_repair(worker: Worker, job_id: Any) -> AuditLogEntry:
    """SIGKILL the worker's main process while its pool process is inside a repair (its
    audit entry written, not completed); the entry."""
    (child,) = worker.pool_children()
    deadline = time.monotonic() + 60
    while True:
        os.kill(child, signal.SIGSTOP)
        entries = open_entries(job_id)
        if entries:
            break
        os.kill(child, signal.SIGCONT)
        assert time.monotonic() < deadline, "never caught the run inside a repair"
        time.sleep(0.02)
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.wait(timeout=10)
    wait_until(lambda: is_dead(child), 10, "the pool process died with its parent")
    (entry,) = entries
    return entry


def test_a_repair_run_whose_whole_worker_dies_is_shown_interrupted_then_resumed_exactly_once(
    table_pair, cassandra, target, write_log, api_client, admin_client, settings, tmp_path
) -> None:
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": VISIBILITY_TIMEOUT}
    mapping = plant(table_pair, cassandra, target)
    log = write_log(mapping)
    job = create_job(mapping, ValidationStrategy.CHECKSUM)
    run_in_process(job)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED and job.mismatch_count == PLANTED, job.error_message
    queue = f"cdcrecon_repair_kill_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    client = api_client(superuser=True)
    sender = Celery("repair-kill-sender", broker=BROKER_URL, set_as_current=False)
    started: list[Worker] = []
    try:
        started.append(Worker(queue, "first", tmp_path))
        sender.send_task(AUTO_REPAIR, args=[str(job.pk)], queue=queue)

        # -- mid-run: the job shows the run working -------------------------------------------
        def working() -> dict[str, Any] | None:
            run = run_state(job.pk)
            assert run.get("status") != "done", f"the run ended before the kill: {run}"
            return run if run.get("made", 0) >= MADE_BEFORE_KILL else None

        wait_until(working, 120, f"{MADE_BEFORE_KILL} differences acted on")
        lost = kill_mid_repair(started[0], job.pk)

        body = client.get(f"/reconciliation/jobs/{job.pk}").json()
        run = body["repair_run"]
        assert run["status"] == "running", run
        assert MADE_BEFORE_KILL <= run["made"] < PLANTED and run["total"] == PLANTED, run
        assert run["deliveries"] == 1 and body["repair_summary"] is None
        made_at_kill = run["made"]

        # -- nobody works on it: interrupted after the visibility timeout ---------------------
        def interrupted() -> dict[str, Any] | None:
            shown = client.get(f"/reconciliation/jobs/{job.pk}").json()["repair_run"]
            return shown if shown["status"] == "interrupted" else None

        shown = wait_until(interrupted, VISIBILITY_TIMEOUT + 10, "the run shown interrupted")
        assert (
            shown["made"] == made_at_kill and shown["last_progress_at"] == run["last_progress_at"]
        )
        page = admin_client.get(
            reverse("admin:reconciliation_reconciliationjob_change", args=[job.pk])
        ).content.decode()
        assert f"interrupted: acted on {made_at_kill} of {PLANTED}" in page
        assert [e.pk for e in open_entries(job.pk)] == [lost.pk]  # not yet abandoned

        # -- a new worker: the broker redelivers, the run resumes and finishes ---------------
        started.append(Worker(queue, "second", tmp_path))

        def done() -> dict[str, Any] | None:
            current = run_state(job.pk)
            return current if current.get("status") == "done" else None

        final_run = wait_until(done, 240, "the resumed run finished")
    finally:
        for worker in started:
            worker.stop()
        with sender.connection_for_write() as connection:
            connection.default_channel.queue_purge(queue)

    # -- what it did: each repair made exactly once ------------------------------------------
    assert (final_run["deliveries"], final_run["abandoned_audit_entries"]) == (2, 1), final_run
    assert final_run["made"] == final_run["total"] == PLANTED, final_run
    lost.refresh_from_db()
    assert (lost.postgres_status, lost.cassandra_status) == (
        StoreStatus.ABANDONED,
        StoreStatus.ABANDONED,
    )
    assert lost.details["action"] == "abandoned" and lost.completed_at is not None
    assert not open_entries(job.pk)
    expected = {f"user-{i}" for i in range(STALE)} | {
        f"user-{i}" for i in range(IN_POSTGRES, IN_CASSANDRA)
    }
    assert writes(target, log) == {key: 1 for key in expected}  # one write per repair
    rows = dict(target.execute(f"SELECT id, email FROM public.{mapping.postgres_table}").fetchall())
    assert rows == {f"user-{i}": f"u{i}@example.com" for i in range(IN_CASSANDRA)}
    statuses = Counter(
        Mismatch.objects.filter(table_name=mapping.name).values_list("resolution_status", flat=True)
    )
    assert set(statuses) <= {ResolutionStatus.AUTO_REPAIRED, ResolutionStatus.AUTO_RESOLVED}
    assert statuses[ResolutionStatus.AUTO_RESOLVED] <= 1, statuses  # the lost one, if written
    succeeded = Counter(
        AuditLogEntry.objects.filter(
            details__job_id=str(job.pk), postgres_status=StoreStatus.SUCCESS
        ).values_list("primary_key", flat=True)
    )
    assert set(succeeded.values()) == {1}, succeeded
    assert len(succeeded) == statuses[ResolutionStatus.AUTO_REPAIRED]
    actions = Counter(
        AutoRepairAction.objects.filter(job=job).values_list("primary_key_value", flat=True)
    )
    assert len(actions) == PLANTED and set(actions.values()) == {1}, actions
    job.refresh_from_db()
    assert job.repair_summary["status"] == "done"
    assert job.repair_summary["repaired"] == statuses[ResolutionStatus.AUTO_REPAIRED]
    body = client.get(f"/reconciliation/jobs/{job.pk}").json()
    assert body["repair_run"]["status"] == "done"
