"""One CHECKSUM job through the real Celery path, on N worker processes.

    .venv/bin/python bench/workers.py --rows N --workers 2 [--strategy CHECKSUM] [--cap R]

Starts N real ``celery -A cdcrecon worker`` processes (prefork pool, concurrency 1 each,
the command line of ``tests/support.py``'s ``celery_worker_command``), each with a TMPDIR of
its own so that they share no local disk, all consuming one queue named after this process
on the bench's Redis database (``stores.BROKER_URL``) and all pointed at the bench's app
database, keyspace and target (``stores.django_environment``).  Once every worker is ready
it creates a MANUAL job as the API does (``create_job`` + ``enqueue_job``), polls the job
row every 0.1 s until it is no longer RUNNING and stops the workers (warm shutdown).  The
job's task goes to that queue, and so do its segments (``job.queue``): whichever worker is
free takes the next one.  (Before jobs were segmented, one worker ran the whole job.)

The wall time runs from ``create_job`` to the poll that sees the job COMPLETED; worker
start-up is not in it.  While the job runs, ``proctree.TreePeak`` follows each worker's
process tree (main process, pool child, anything the child starts).  Prints one JSON line:
``{"seconds", "peak_rss_mb", "detail"}`` where ``peak_rss_mb`` is the largest worker's sum of
per-process peaks (VmHWM) and ``detail`` has every worker's breakdown and PSS peak, and the
job row's counts, findings and segments (kind@worker: count), if the job had segments.

``--cap R`` runs the workers under the source read-rate cap
(``RECONCILIATION_SOURCE_MAX_ROWS_PER_SECOND=R``: the global bucket, in the bench's Redis
database, emptied of any earlier run's state first); the job's own read rate
(``source_rows_per_second``) is in ``detail`` either way.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import appdb  # noqa: E402
from dataset import table_name  # noqa: E402
from proctree import TreePeak  # noqa: E402
from stores import ROOT, SUFFIX, django_environment, setup_django  # noqa: E402

READY_SECONDS = 120
QUEUE = f"cdcrecon_bench{SUFFIX}_{os.getpid()}"


def worker_command(hostname: str) -> list[str]:
    """As ``tests.support.celery_worker_command``: one prefork process on QUEUE."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "cdcrecon",
        "worker",
        "--pool=prefork",
        "--concurrency=1",
        f"--queues={QUEUE}",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
        f"--hostname={hostname}",
    ]


class Worker:
    def __init__(self, number: int, table: str, scratch: Path, cap: int = 0) -> None:
        self.tmpdir = scratch / f"worker-{number}"
        self.tmpdir.mkdir()
        self.log_path = scratch / f"worker-{number}.log"
        env = django_environment(table, TMPDIR=str(self.tmpdir))
        if cap:
            env["RECONCILIATION_SOURCE_MAX_ROWS_PER_SECOND"] = str(cap)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                worker_command(f"bench{number}-{os.getpid()}@%h"),
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.peak = TreePeak(self.process.pid).start()

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise SystemExit(f"a Celery worker exited:\n{self.log_path.read_text()[-3000:]}")
        return b" ready." in self.log_path.read_bytes()

    def stop(self) -> None:
        self.peak.stop()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # warm shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # its own session and group
                self.process.wait(timeout=10)

    def report(self) -> dict[str, Any]:
        return {
            "rss_mb": round(self.peak.hwm_mb),
            "pss_mb": round(self.peak.pss_mb),
            "processes": self.peak.breakdown(),
        }


def wait_for(condition: Any, seconds: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(interval)


def run(rows: int, count: int, strategy: str, cap: int = 0) -> dict[str, Any]:
    name = table_name(rows)
    setup_django(name)
    from cdcrecon.celery import app
    from reconciliation.choices import JobStatus
    from reconciliation.models import ReconciliationJob
    from reconciliation.ratelimit import GLOBAL_SCOPE, KEY_PREFIX, redis_client

    app.conf.task_default_queue = QUEUE  # enqueue_job sends the job task here
    appdb.reset(name)
    if cap:  # a fresh bucket: no debt or back-off left by an earlier run
        redis_client().delete(f"{KEY_PREFIX}{GLOBAL_SCOPE}")
    # BENCH_KEEP_LOGS=1 keeps the workers' logs (printed on stderr) instead of deleting them.
    scratch = Path(tempfile.mkdtemp(prefix="cdcrecon-bench-"))
    keep = os.environ.get("BENCH_KEEP_LOGS") == "1"
    try:
        workers = [Worker(n, name, scratch, cap) for n in range(1, count + 1)]
        try:
            wait_for(lambda: all(w.ready() for w in workers), READY_SECONDS, "the workers")
            started = time.perf_counter()
            job = appdb.new_job(name, strategy)
            appdb.enqueue(job)
            job_status = ReconciliationJob.objects.filter(pk=job.pk).values_list(
                "status", flat=True
            )
            wait_for(
                lambda: job_status.first() != JobStatus.RUNNING,
                max(600, rows / 2000, 3 * rows / cap if cap else 0),
                f"job {job.pk}",
            )
            seconds = time.perf_counter() - started
        finally:
            for worker in workers:
                worker.stop()
        detail = appdb.summary(job)
        if detail["status"] != JobStatus.COMPLETED:
            logs = "\n".join(w.log_path.read_text()[-2000:] for w in workers)
            raise SystemExit(f"job {job.pk} ended {detail['status']}: {detail['error']}\n{logs}")
    finally:
        if keep:
            print(f"worker logs: {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    detail["workers"] = [w.report() for w in workers]
    return {
        "seconds": seconds,
        "peak_rss_mb": max(w.peak.hwm_mb for w in workers),
        "detail": detail,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--strategy", default="CHECKSUM")
    parser.add_argument("--cap", type=int, default=0, help="Source read-rate cap, rows/s.")
    args = parser.parse_args()
    print(json.dumps(run(args.rows, args.workers, args.strategy, args.cap)))


if __name__ == "__main__":
    main()
