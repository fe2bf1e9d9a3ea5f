"""``manage.py reconcile TABLE``: run one reconciliation job in this process.

The job runs through the same segment code as the Celery workers
(``reconciliation.jobs.run_in_process``: plan, every segment, finalize), one after the
other here; on a terminal, stderr shows a progress bar with the segments done.

Differences found *in flight* (their source rows younger than the table's CDC lag budget) are
waited for and re-checked here before the summary (``jobs.after.run_after_job``: nothing is left
in flight), unless ``--no-wait`` leaves them to the workers' re-check.

Exit status: 0 when the job completed (whatever the drift), 1 when it failed (or another
job holds the table), 2 for bad arguments (unknown table, strategy, date, window or sample
size), with a one-line error on stderr and no job created.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections import Counter
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandParser

from reconciliation.choices import JobStatus, JobType, ValidationStrategy
from reconciliation.forensics.report import job_forensics
from reconciliation.jobs import (
    BadJobRequest,
    JobAlreadyRunning,
    build_parameters,
    create_job,
    run_in_process,
)
from reconciliation.jobs.after import run_after_job
from reconciliation.models import ReconciliationJob
from reconciliation.presenters import job_detail
from reconciliation.registry import UnknownTable, get_mapping
from reconciliation.repair.runs import describe_summary

BAD_ARGUMENTS = 2
FAILED = 1


class BadArgument(ValueError):
    pass


def parse_time(name: str, text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadArgument(
            f"--{name} {text!r} is not an ISO 8601 date-time, e.g. 2025-11-25T10:00:00Z."
        ) from None
    if value.tzinfo is None:
        raise BadArgument(f"--{name} needs a time zone, e.g. 2025-11-25T10:00:00Z.")
    return value


def parse_sample_size(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise BadArgument(f"--sample-size {text!r} is not a whole number.") from None


class ProgressBar:
    """A one-line progress bar redrawn on stderr (only when stderr is a terminal): percent,
    and the token-range segments compared so far (none shown for SAMPLE, not segmented)."""

    WIDTH = 30

    def __init__(self, stream: Any, label: str) -> None:
        self.stream = stream
        self.label = label
        self.shown: tuple[int, int, int] | None = None

    def __call__(self, fraction: float, done: int = 0, total: int = 0) -> None:
        percent = int(max(0.0, min(1.0, fraction)) * 100)
        if (percent, done, total) == self.shown:
            return
        self.shown = (percent, done, total)
        filled = self.WIDTH * percent // 100
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        segments = f"  segments {done}/{total}" if total else ""
        self.stream.write(f"\r{self.label} [{bar}] {percent:3d}%{segments}")
        self.stream.flush()

    def close(self) -> None:
        if self.shown is not None:
            self.stream.write("\n")
            self.stream.flush()


class Command(BaseCommand):
    help = "Reconcile one table now (a MANUAL job) and print what it found."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)

        def one_line_error(message: str) -> None:
            sys.stderr.write(f"reconcile: error: {message}\n")
            sys.exit(BAD_ARGUMENTS)

        parser.error = one_line_error  # type: ignore[method-assign]
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("table", help="The table's name, e.g. users.")
        parser.add_argument(
            "--strategy",
            default=ValidationStrategy.CHECKSUM,
            help=f"One of {', '.join(ValidationStrategy.values)} (default CHECKSUM).",
        )
        parser.add_argument("--from", dest="window_from", help="TIMESTAMP_RANGE: start (ISO).")
        parser.add_argument("--to", dest="window_to", help="TIMESTAMP_RANGE: end (ISO).")
        parser.add_argument("--sample-size", help="SAMPLE: how many keys to examine.")
        parser.add_argument(
            "--json", action="store_true", help="Print only the job, as the API returns it."
        )
        parser.add_argument(
            "--no-wait",
            action="store_true",
            help="Do not wait for differences in flight (the workers' re-check settles them).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            strategy = str(options["strategy"]).upper()
            window_from = parse_time("from", options["window_from"])
            window_to = parse_time("to", options["window_to"])
            sample_size = parse_sample_size(options["sample_size"])
            parameters = build_parameters(
                strategy, window_from=window_from, window_to=window_to, sample_size=sample_size
            )
            mapping = get_mapping(options["table"])
        except (BadArgument, BadJobRequest, UnknownTable) as exc:
            self._fail(BAD_ARGUMENTS, str(exc))
        try:
            job = create_job(mapping, strategy, job_type=JobType.MANUAL, parameters=parameters)
        except JobAlreadyRunning as exc:
            self._fail(FAILED, str(exc))
        bar = ProgressBar(sys.stderr, f"{mapping.name} {strategy}") if sys.stderr.isatty() else None
        try:
            run_in_process(job, on_progress=bar)
        finally:
            if bar is not None:
                bar.close()
        job.refresh_from_db()
        run_after_job(job, wait_in_flight=not options["no_wait"], on_wait=_say_waiting)
        if options["json"]:
            self.stdout.write(json.dumps(job_detail(job), indent=2))
        else:
            self._summary(job)
        if job.status != JobStatus.COMPLETED:
            sys.stderr.write(f"reconcile: job {job.status}: {job.error_message}\n")
            sys.exit(FAILED)

    def _fail(self, status: int, message: str) -> NoReturn:
        sys.stderr.write(f"reconcile: error: {' '.join(message.split())}\n")
        sys.exit(status)

    def _summary(self, job: ReconciliationJob) -> None:
        seconds = f"{job.duration_seconds:.1f} s" if job.duration_seconds is not None else "?"
        head = f"Job {job.job_id}: {job.table_name} {job.validation_strategy} {job.status} in {seconds}"
        if job.status != JobStatus.COMPLETED:
            self.stdout.write(head)
            return
        kinds = Counter(job.findings.values_list("mismatch_type", flat=True))
        by_kind = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
        lines = [
            head,
            f"  rows: Cassandra {_number(job.cassandra_row_count)}, "
            f"PostgreSQL {_number(job.postgres_row_count)}; "
            f"keys examined {_number(job.keys_examined)}",
            f"  mismatches: {job.mismatch_count}"
            + (f" ({by_kind})" if by_kind else "")
            + f"; transient {job.transient_count}"
            + f"; in flight {job.in_flight_count}; expired {job.expired_count}",
            (
                "  drift: inconclusive (nothing was examined)"
                if job.is_inconclusive
                else f"  drift: {job.drift_percentage or 0:.4g}%"
            )
            + (
                f" (95% CI {job.drift_ci_low:.3g}% to {job.drift_ci_high:.3g}%)"
                if job.drift_ci_low is not None and job.drift_ci_high is not None
                else ""
            )
            + f"; alert {job.alert_level}",
        ]
        if job.recheck_rule:
            budget = (
                f" (CDC lag budget {job.lag_budget_seconds:g} s)"
                if job.lag_budget_seconds is not None
                else ""
            )
            lines.append(f"  re-check rule: {job.recheck_rule}{budget}")
        if job.source_rows_per_second is not None:
            lines.append(f"  read Cassandra at {job.source_rows_per_second:,.0f} rows/s")
        if job.window is not None:
            lines.append(f"  window: {job.window['from']} to {job.window['to']}")
        lines += [f"  schema warning: {w}" for w in job.schema_warnings or []]
        if job.parameters:
            lines.append(f"  parameters: {json.dumps(job.parameters, sort_keys=True)}")
        if job.repair_summary:
            lines.append(f"  repair policy: {describe_summary(job.repair_summary)}")
        findings = job_forensics(job)["findings"]
        if findings:
            lines.append("  findings:")
            lines += [f"    - {f['message']} [{f['rule']}]" for f in findings]
        self.stdout.write("\n".join(lines))


def _say_waiting(in_flight: int, seconds: float) -> None:
    sys.stderr.write(
        f"reconcile: {in_flight} difference(s) in flight; re-checking them "
        f"in {seconds:.0f} s, once the CDC lag budget has passed\n"
    )


def _number(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"
