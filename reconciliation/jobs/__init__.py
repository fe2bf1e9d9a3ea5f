"""A reconciliation job's whole life, one module per step (plain functions; the Celery
tasks in ``reconciliation.tasks`` only call them):

* ``create``: check what was asked (``build_parameters``), claim the table (``create_job``)
  and the engine's options;
* ``queue``: send work to the workers by task name (``enqueue_job``);
* ``slots``: job slots (RECONCILIATION_MAX_CONCURRENT_JOBS), run locks and the heartbeat;
* ``segments``: split a job into segments, send them out, run one (``staging``: the
  target's rows by token, in the app database);
* ``runner``: a job's coordinator, on a worker (``execute_job``) or in this process
  (``run_in_process``), and ``resume_job``;
* ``finalizer``: totals, the one re-check, the ledger, the verdict;
* ``failures``: the FAILED message that names the store;
* ``schedule``: beat's schedule, the scheduled run and the reaper.
"""

from reconciliation.jobs.create import (
    BadJobRequest,
    JobAlreadyRunning,
    build_parameters,
    create_job,
    engine_options,
)
from reconciliation.jobs.failures import describe_failure, record_failure
from reconciliation.jobs.queue import enqueue_job
from reconciliation.jobs.runner import (
    JobNotResumable,
    execute_job,
    execute_segment,
    resume_job,
    run_in_process,
)

__all__ = [
    "BadJobRequest",
    "JobAlreadyRunning",
    "JobNotResumable",
    "build_parameters",
    "create_job",
    "describe_failure",
    "engine_options",
    "enqueue_job",
    "execute_job",
    "execute_segment",
    "record_failure",
    "resume_job",
    "run_in_process",
]
