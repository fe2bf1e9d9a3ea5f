"""The target's half of a large key-by-key diff, in a child process beside the source scan.

The target's side (COPY, compare forms, Murmur3 tokens, sorting) and the merge are CPU-bound
Python; in a thread they would fight the Cassandra scan for the GIL and stall it.  A child
process (``python -m reconciliation.engine.target_worker``, started with ``subprocess``,
which also works inside Celery's daemonic prefork workers) does them on another core:

1. it reads the target snapshot into sorted runs (``spill.SortedRuns``), while
2. the parent scans Cassandra and appends its records, in token order, to a record log
   (``spill.RecordLog``) in the same temporary directory;
3. it then follows the log as it grows and merges it with the sorted target
   (``merge.merge_by_token``), writing the differences to a spool file, and
4. answers with one JSON line on stdout: the counts and the differences' file (or the
   error, pickled).  The parent only decodes Cassandra rows; the verdicts are its own.

The job comes as a pickle on stdin.  The child stops when its parent goes away.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from reconciliation.engine.merge import PassCounts, merge_by_token
from reconciliation.engine.records import Codec
from reconciliation.engine.schema import Layout, Window
from reconciliation.engine.spill import SortedRuns, Spool, follow

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class TargetJob:
    layout: Layout
    database_url: str
    window: Window | None
    run_size: int
    directory: str
    nice: int = 0
    # When set, the child also merges: it follows the parent's RecordLog of Cassandra
    # records and writes the differences to a Spool file.  Otherwise it only hands over the
    # sorted runs and the parent merges.
    source_log: str = ""
    differences: str = ""


def spill_target(
    rows: Any, record: Any, target: SortedRuns, cancelled: threading.Event | None = None
) -> None:
    """Records of every target row into ``target`` (in batches, checking ``cancelled``)."""
    batch: list[tuple[int, bytes, bytes]] = []
    for row in rows:
        batch.append(record(row))
        if len(batch) >= 10_000:
            target.extend(batch)
            batch = []
            if cancelled is not None and cancelled.is_set():
                return
    target.extend(batch)


def _run(job: TargetJob) -> dict[str, Any]:
    from reconciliation.engine.postgres import PostgresTable

    codec = Codec(job.layout)
    if not codec.pairs_by_token:
        raise ValueError("The partition key is paired by key hash, not by token.")
    table = PostgresTable(lambda: psycopg.connect(job.database_url), job.layout)
    runs = SortedRuns(job.run_size, directory=job.directory)
    with table.snapshot(job.window) as rows:
        spill_target(rows, codec.postgres_record, runs)
    if not job.source_log:  # the parent merges: hand over the sorted runs
        return {"runs": runs.finish(), "count": runs.count, "peak_rss_mb": _peak_rss_mb()}
    parent = os.getppid()
    source = follow(job.source_log, lambda: os.getppid() == parent)
    counts = PassCounts()
    with Spool(job.differences) as differences:
        merge_by_token(source, runs.merged(), differences, counts)
        differences.flush()
        found = differences.count
    return {
        "counts": [counts.cassandra_rows, counts.postgres_rows, counts.keys],
        "differences": found,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _peak_rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def main() -> None:
    job: TargetJob = pickle.load(sys.stdin.buffer)
    # Yield the CPU to the Cassandra scan beside us (and to Cassandra itself, when it runs on
    # this machine): the scan is the longer of the two, so it sets the pace.
    if job.nice and hasattr(os, "nice"):
        os.nice(job.nice)
    try:
        answer = _run(job)
    except Exception as exc:
        try:
            pickled = base64.b64encode(pickle.dumps(exc)).decode()
        except Exception:
            pickled = ""
        answer = {"error": f"{type(exc).__name__}: {exc}", "exception": pickled}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


class TargetProcess:
    """The running child process; ``result()`` waits for its answer."""

    def __init__(self, job: TargetJob) -> None:
        self.peak_rss_mb: float | None = None
        self._stderr = tempfile.TemporaryFile(prefix="cdcrecon-target-")
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reconciliation.engine.target_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=ROOT,
            env=env,
        )
        assert self.process.stdin is not None
        self.process.stdin.write(pickle.dumps(job))
        self.process.stdin.close()

    def done(self) -> bool:
        return self.process.poll() is not None

    def result(self) -> dict[str, Any]:
        """Wait for the child; its answer, or its error raised here."""
        assert self.process.stdout is not None
        output = self.process.stdout.read()
        self.process.wait()
        self._stderr.seek(0)
        errors = self._stderr.read().decode("utf-8", "replace").strip()
        self._stderr.close()
        try:
            answer = json.loads(output.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            last = errors.splitlines()[-1] if errors else f"exit status {self.process.returncode}"
            raise RuntimeError(f"Reading the target in a child process failed: {last}") from None
        if "error" in answer:
            try:
                error = pickle.loads(base64.b64decode(answer.get("exception") or ""))
            except Exception:  # not every exception survives a pickle round trip
                error = None
            if isinstance(error, Exception):
                raise error
            raise RuntimeError(answer["error"])
        self.peak_rss_mb = answer.get("peak_rss_mb")
        return answer  # type: ignore[no-any-return]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._stderr.close()


if __name__ == "__main__":
    main()
