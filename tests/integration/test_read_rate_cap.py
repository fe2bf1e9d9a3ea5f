"""The source read-rate cap (reconciliation.ratelimit): a capped CHECKSUM over two real
Celery workers reads Cassandra at no more than 1.1x its cap, and still finds every planted
difference; the job records the rate at which it read.

The workers are real processes sharing one queue, the test database and the test broker's
Redis (where the cap's bucket lives), and nothing else: committed data only,
``transaction=True``.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cassandra.concurrent import execute_concurrent_with_args
from django.test import override_settings

from cdcrecon.conf import settings
from reconciliation.choices import JobStatus, MismatchType, SegmentKind, ValidationStrategy
from reconciliation.jobs import create_job, run_in_process
from reconciliation.models import JobFinding, ReconciliationJob
from reconciliation.models.segments import JobSegment
from tests.conftest import TEST_BROKER_URL, TEST_QUEUE
from tests.support import REPO, celery_worker_command, child_env, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

COLUMNS = "id text PRIMARY KEY, email text"
RATE_QUEUE = f"{TEST_QUEUE}_rate"
CAP = 2000  # rows/s
ROWS = 6000


@pytest.fixture(scope="module")
def two_workers(
    django_db_setup: None, celery_broker: str, tmp_path_factory: Any
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two worker processes (one pool process each) sharing a queue of their own, with
    segments of 500 rows (so a table of a few thousand rows makes many)."""
    log_dir = tmp_path_factory.mktemp("rate-workers")
    suffix = os.environ.get("CDCRECON_TEST_SUFFIX", "")
    started: list[tuple[subprocess.Popen[bytes], Any]] = []
    for name in ("ra", "rb"):
        log_path = log_dir / f"worker-{name}.log"
        tmpdir = log_dir / f"tmp-{name}"
        tmpdir.mkdir()
        env = child_env(
            CELERY_BROKER_URL=celery_broker, RECONCILIATION_SEGMENT_ROWS="500", TMPDIR=str(tmpdir)
        )
        command = celery_worker_command(RATE_QUEUE, f"cdcrecon-{name}{suffix}-{os.getpid()}@%h")
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command,
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append((process, log_path))
    for process, log_path in started:

        def ready(process: subprocess.Popen[bytes] = process, log_path: Any = log_path) -> bool:
            assert process.poll() is None, log_path.read_text()
            return b" ready." in log_path.read_bytes()

        wait_until(ready, 90, f"a rate-cap worker did not start; its log: {log_path}")
    yield [process for process, _ in started]
    for process, _ in started:
        process.send_signal(signal.SIGTERM)
    for process, _ in started:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture
def planted(cassandra, target, table_pair) -> Callable[..., tuple[Any, dict[str, str]]]:
    """``planted(rows, **mapping_fields)``: a table pair of ``rows`` equal rows plus three
    differences of each type spread over the keys; (mapping, {key: mismatch type})."""

    def make(rows: int, **mapping_fields: Any) -> tuple[Any, dict[str, str]]:
        mapping = table_pair(COLUMNS, COLUMNS, **mapping_fields)
        only_cassandra = [f"only-c-{k}" for k in range(3)]
        only_postgres = [f"only-p-{k}" for k in range(3)]
        changed = {f"user-{k * (rows // 3) + 7:06d}" for k in range(3)}
        same = [(f"user-{i:06d}", f"u{i}@example.com") for i in range(rows)]
        insert = cassandra.prepare(f"INSERT INTO {mapping.name} (id, email) VALUES (?, ?)")
        source = same + [(key, f"{key}@c") for key in only_cassandra]
        execute_concurrent_with_args(
            cassandra, insert, source, concurrency=64, raise_on_first_error=True
        )
        with target.cursor() as cursor:
            with cursor.copy(f"COPY public.{mapping.name} (id, email) FROM STDIN") as copy:
                for key, email in same:
                    copy.write_row((key, f"changed-{email}" if key in changed else email))
                for key in only_postgres:
                    copy.write_row((key, f"{key}@p"))
        target.execute(f"ANALYZE public.{mapping.name}")
        expected = {key: MismatchType.MISSING_IN_POSTGRES.value for key in only_cassandra}
        expected |= {key: MismatchType.MISSING_IN_CASSANDRA.value for key in only_postgres}
        expected |= {key: MismatchType.DATA_MISMATCH.value for key in changed}
        return mapping, expected

    return make


def found(job: ReconciliationJob) -> dict[str, str]:
    rows = list(
        JobFinding.objects.filter(job=job).values_list(
            "mismatch__primary_key_value", "mismatch_type"
        )
    )
    assert len(rows) == len({key for key, _ in rows}), rows
    return dict(rows)


def finished(job_id: Any) -> ReconciliationJob | None:
    job = ReconciliationJob.objects.get(pk=job_id)
    return job if job.status != JobStatus.RUNNING else None


def compare_span(job: ReconciliationJob) -> float:
    """Seconds from the first COMPARE segment's start to the last one's finish."""
    compare = list(JobSegment.objects.filter(job=job, kind=SegmentKind.COMPARE))
    first = min(s.started_at for s in compare if s.started_at)
    last = max(s.finished_at for s in compare if s.finished_at)
    return (last - first).total_seconds()


def test_a_capped_checksum_on_two_workers_holds_its_cap_and_finds_every_difference(
    two_workers, planted
) -> None:
    from cdcrecon.celery import app

    # Given a table of 6,000 rows capped at 2,000 rows/s (its own cap),
    mapping, expected = planted(ROWS, source_max_rows_per_second=CAP)
    job = create_job(mapping, ValidationStrategy.CHECKSUM)
    ReconciliationJob.objects.filter(pk=job.pk).update(queue=RATE_QUEUE)

    # when a CHECKSUM runs over the two workers,
    app.send_task("reconciliation.run_job", args=[str(job.pk)], queue=RATE_QUEUE)
    done = wait_until(lambda: finished(job.pk), 120, f"job {job.pk} is still RUNNING")

    # then it finds exactly the planted differences,
    assert done.status == JobStatus.COMPLETED, done.error_message
    assert found(done) == expected
    assert done.cassandra_row_count == ROWS + 3
    # its segments ran in both workers,
    workers = set(JobSegment.objects.filter(job=job).values_list("worker", flat=True))
    assert len(workers) == 2, workers
    # and it read Cassandra at no more than 1.1x the cap, as it reports:
    rate = done.source_rows_per_second
    assert rate is not None
    assert rate <= 1.1 * CAP, rate
    span = compare_span(done)
    assert rate == pytest.approx((ROWS + 3) / span, rel=1e-6)
    # (uncapped, these 6,000 rows take a fraction of a second: the cap is what held it)
    assert span >= (ROWS - 0.2 * CAP) / CAP * 0.95, span


def test_an_uncapped_job_reports_its_read_rate_too(planted) -> None:
    mapping, expected = planted(1200)
    job = create_job(mapping, ValidationStrategy.CHECKSUM)
    run_in_process(job)
    job.refresh_from_db()

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert found(job) == expected
    assert job.source_rows_per_second is not None
    assert job.source_rows_per_second == pytest.approx(1203 / compare_span(job), rel=1e-6)


def test_the_global_cap_holds_a_job_in_this_process_and_the_cli_prints_the_rate(
    planted, capsys
) -> None:
    from django.core.management import call_command

    capped = dataclasses.replace(settings.reconciliation, source_max_rows_per_second=1500)
    mapping, expected = planted(1500)
    # The global bucket of this test run's broker database, not the machine's.
    with override_settings(RECONCILIATION=capped, CELERY_BROKER_URL=TEST_BROKER_URL):
        started = time.monotonic()
        call_command("reconcile", mapping.name, "--strategy", "CHECKSUM")
        elapsed = time.monotonic() - started

    job = ReconciliationJob.objects.get(table_name=mapping.name)
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert found(job) == expected
    assert job.source_rows_per_second is not None
    assert job.source_rows_per_second <= 1.1 * 1500
    assert elapsed >= (1503 - 300) / 1500 * 0.95
    assert f"read Cassandra at {job.source_rows_per_second:,.0f} rows/s" in capsys.readouterr().out


def test_a_capped_jobs_reads_back_off_through_its_session_and_page_at_most_a_bucketful(
    planted,
) -> None:
    from reconciliation.jobs import engine_options
    from reconciliation.ledger.reads import engine_for

    mapping, _ = planted(10, source_max_rows_per_second=CAP)
    job = create_job(mapping, ValidationStrategy.CHECKSUM)
    with override_settings(CELERY_BROKER_URL=TEST_BROKER_URL):
        options = engine_options(job, mapping)
    engine = engine_for(mapping, options)

    caps = options.source_limiter
    assert caps is not None
    assert [(b.scope, b.rows_per_second) for b in caps.buckets] == [(f"table:{mapping.name}", CAP)]
    # The session the engine reads through tells the caps of every transient error,
    assert engine.cassandra.session.on_transient == caps.on_transient
    # and a page holds at most one bucketful (0.2 s of the cap).
    assert engine.cassandra.page_size == CAP // 5


def test_an_uncapped_engine_has_no_limiter(planted) -> None:
    from reconciliation.jobs import engine_options

    mapping, _ = planted(10)
    job = create_job(mapping, ValidationStrategy.CHECKSUM)
    assert engine_options(job, mapping).source_limiter is None
