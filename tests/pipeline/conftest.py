"""End to end through the real pipeline: Cassandra (WITH cdc = true) -> the Debezium Cassandra 5
agent -> Kafka -> the sink (pipeline/sink.py, a real process per test) -> PostgreSQL, and
cdcrecon's jobs over both stores.

Kafka and the agent are the ones ``make pipeline`` starts (``make test`` does); when one is
missing every test here FAILS naming it. Each test starts its own sink process on the test
keyspace and test target database, in a consumer group of its own, so it can kill, restart or
misconfigure that sink without touching anyone else's. Stopping the agent (the outage tests)
goes through ``scripts/pipeline stop/start connector``, the same commands an operator uses.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cdcrecon.conf import settings
from pipeline import control
from reconciliation.choices import JobStatus, ResolutionStatus, ValidationStrategy
from reconciliation.connections import cassandra_session
from reconciliation.jobs import build_parameters, create_job, run_in_process
from reconciliation.models import Mismatch, ReconciliationJob, TableMapping
from reconciliation.registry import ensure_key_columns
from tests.support import REPO, wait_until

# A test table's CDC lag budget: above the pipeline's steady lag (the node syncs its commit
# log every 10 s; the agent polls every 0.5 s), so writes in transit are in flight, not drift.
LAG_BUDGET_SECONDS = 20


@pytest.fixture(scope="session")
def pipeline_running() -> None:
    """Kafka and the agent, as ``make pipeline`` left them; FAIL naming the part if not."""
    try:
        control.require(("kafka", "connector"))
    except control.PipelineDown as exc:
        pytest.fail(str(exc), pytrace=False)


@dataclass
class Sink:
    """One sink process of the test's own, and how to hurt it."""

    keyspace: str
    target: str
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    group: str = field(default_factory=lambda: f"cdcrecon-test-sink-{uuid.uuid4().hex[:8]}")
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        offset = self.log.stat().st_size if self.log.exists() else 0
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", **self.env)
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pipeline.sink",
                    "--kafka",
                    control.kafka_address(),
                    "--keyspaces",
                    self.keyspace,
                    "--target",
                    self.target,
                    "--group",
                    self.group,
                    "--batch-size",
                    "200",
                ],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"the sink exited:\n{self.log.read_text()[-3000:]}", pytrace=False)
            with open(self.log, "rb") as log:
                log.seek(offset)
                return b"sink: ready" in log.read()

        wait_until(ready, 60, f"the sink did not join Kafka at {control.kafka_address()}")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no offset commit, an open transaction lost."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def results(self, word: str) -> int:
        """How many events the sink's batches reported as ``word`` (upserted, stale, …)."""
        total = 0
        for line in self.log.read_text().splitlines():
            if "sink: batch of" in line and f"'{word}': " in line:
                total += int(line.split(f"'{word}': ")[1].split(",")[0].split("}")[0])
        return total


@pytest.fixture
def sink_factory(
    pipeline_running: None, target_db: str, cassandra_keyspace: str, tmp_path: Path
) -> Iterator[Callable[..., Sink]]:
    """``sink_factory(**env)``: a started sink on the test keyspace and target database."""
    sinks: list[Sink] = []

    def make(**env: str) -> Sink:
        sink = Sink(cassandra_keyspace, target_db, tmp_path / f"sink-{len(sinks)}.log", env)
        sinks.append(sink)  # stopped after the test even if it fails to start
        sink.start()
        return sink

    yield make
    for sink in sinks:
        sink.stop()


@pytest.fixture
def connector_restored() -> Iterator[None]:
    """A test that stops the agent leaves it running again, whatever happens."""
    yield
    if not control.part_running("connector"):
        control.run_script("start", "connector")


@pytest.fixture
def captured_table(
    pipeline_running: None, cassandra_keyspace: str, target: psycopg.Connection, db: None
) -> Iterator[Callable[..., TableMapping]]:
    """``captured_table(cassandra_columns, postgres_columns, **mapping)``: a Cassandra table
    WITH cdc = true that the agent captures, its empty copy in the target and its mapping."""
    created: list[str] = []
    session = cassandra_session()

    def make(cassandra_columns: str, postgres_columns: str, **fields: Any) -> TableMapping:
        name = f"p_{uuid.uuid4().hex[:12]}"
        offset = control.log_size()
        session.execute(
            f"CREATE TABLE {cassandra_keyspace}.{name} ({cassandra_columns}) WITH cdc = true"
        )
        target.execute(f"CREATE TABLE public.{name} ({postgres_columns})")
        created.append(name)
        try:
            control.wait_for_tables(cassandra_keyspace, [name], offset)
        except control.PipelineDown as exc:
            pytest.fail(str(exc), pytrace=False)
        fields.setdefault("cdc_lag_budget_seconds", LAG_BUDGET_SECONDS)
        mapping = TableMapping.objects.create(
            name=name,
            cassandra_keyspace=settings.cassandra.keyspace,
            cassandra_table=name,
            postgres_schema="public",
            postgres_table=name,
            **fields,
        )
        return ensure_key_columns(mapping, session)

    yield make
    for name in created:
        session.execute(f"DROP TABLE IF EXISTS {cassandra_keyspace}.{name}")
        target.execute(f"DROP TABLE IF EXISTS public.{name}")


def count_rows(target: psycopg.Connection, table: str, where: str = "TRUE") -> int:
    row = target.execute(f"SELECT count(*) FROM public.{table} WHERE {where}").fetchone()
    return int(row[0]) if row else 0


def wait_rows(target: psycopg.Connection, table: str, expected: int, timeout: float = 90) -> None:
    """Poll until the sink has brought the target table to ``expected`` rows."""
    wait_until(
        lambda: count_rows(target, table) == expected,
        timeout,
        f"{table}: the pipeline did not bring the target to {expected} rows "
        f"(has {count_rows(target, table)}); logs: {control.log_path('connector')}",
    )


def run_job(
    mapping: TableMapping, strategy: str = ValidationStrategy.CHECKSUM
) -> ReconciliationJob:
    job = create_job(mapping, strategy, parameters=build_parameters(strategy))
    run_in_process(job)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error_message
    return job


def statuses(mapping: TableMapping) -> dict[str, str]:
    return dict(
        Mismatch.objects.filter(table_name=mapping.name).values_list(
            "primary_key_value", "resolution_status"
        )
    )


def pending(mapping: TableMapping) -> int:
    return Mismatch.objects.filter(
        table_name=mapping.name, resolution_status=ResolutionStatus.PENDING
    ).count()


def micros(seconds_since_epoch: float) -> int:
    return int(seconds_since_epoch * 1_000_000)


def now_us() -> int:
    return micros(time.time())
