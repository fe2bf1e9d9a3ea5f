"""One job run in this process, the ``manage.py reconcile`` way (no Celery).

    .venv/bin/python bench/inprocess.py --rows N --strategy CHECKSUM|ROW_COUNT|SAMPLE
        [--no-write-times]

Creates a MANUAL job for the bench table in the bench's app database, runs it through
``reconciliation.jobs`` (``run_in_process`` once jobs are segmented, ``run_job`` before),
and prints one JSON line: ``{"seconds", "detail"}`` with the job row's counts and findings
(``bench/run.py`` adds the peak RSS of this process and its children).  The timer covers
creating, running and recording the job, not Django's start-up.  ``--no-write-times`` reads
the source without its rows' write times and TTLs (``Options.write_times``): the baseline
of the write-time cost.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import appdb  # noqa: E402
from dataset import table_name  # noqa: E402
from stores import setup_django  # noqa: E402


def override_options(**changes: Any) -> Callable[[], None]:
    """Jobs run here get the engine's options for the job with ``changes``; the function
    returned puts the options back."""
    import dataclasses

    from reconciliation.jobs import runner

    options_for = runner.engine_options
    runner.engine_options = lambda *a, **k: dataclasses.replace(  # type: ignore[assignment]
        options_for(*a, **k), **changes
    )

    def restore() -> None:
        runner.engine_options = options_for  # type: ignore[assignment]

    return restore


def without_write_times() -> None:
    """Jobs run here read no write times (the engine's options for the job, switched off)."""
    override_options(write_times=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--strategy", default="CHECKSUM")
    parser.add_argument("--no-write-times", action="store_true")
    args = parser.parse_args()
    name = table_name(args.rows)
    setup_django(name)
    if args.no_write_times:
        without_write_times()
    appdb.reset(name)
    parameters = {"sample_size": 1000} if args.strategy == "SAMPLE" else {}
    started = time.perf_counter()
    job = appdb.new_job(name, args.strategy, **parameters)
    appdb.run_here(job)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "detail": appdb.summary(job)}))


if __name__ == "__main__":
    main()
