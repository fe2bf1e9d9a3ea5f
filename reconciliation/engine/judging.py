"""The verdict step of a run: which of its differences are drift, in flight, expired or
gone (transient), by the run's rule (``Engine.recheck_rule``, described in ``core.py``).

``Judging`` is the part of ``Engine`` that decides; the engine gives it its reads
(``read_both``) and its report (``_emit``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from reconciliation.engine.lag import EXPIRED, READ_AGAIN, LagVerdict, lag_verdict
from reconciliation.engine.merge import Diff, agree
from reconciliation.engine.records import SourceWrite
from reconciliation.engine.spill import Spool
from reconciliation.engine.terms import Options, Progress
from reconciliation.vocabulary import (
    DATA_MISMATCH,
    FIXED_DELAY,
    IN_FLIGHT,
    MISSING_IN_CASSANDRA,
    MISSING_IN_POSTGRES,
    WRITE_TIME,
)

VERDICT_BATCH = 500

#: The progress fraction at which a run's reading ends and its transient re-check begins.
RECHECK_PROGRESS = 0.9

Rows = tuple[list["bytes | None"], list[tuple[bytes, ...]], list["SourceWrite | None"]]


@dataclass
class Verdicts:
    mismatches: int = 0
    transient: int = 0
    agreed: int = 0
    in_flight: int = 0
    expired: int = 0


class Judging:
    """Deciding a run's differences (``judge``); ``Engine`` provides the reads."""

    options: Options
    progress: Progress
    reads_began_at: float

    @property
    def recheck_rule(self) -> str:
        raise NotImplementedError

    def read_both(
        self, keys: Sequence[bytes], *, cassandra: bool = True, postgres: bool = True
    ) -> Rows:
        raise NotImplementedError

    def _emit(
        self,
        key: bytes,
        c_row: bytes | None,
        p_rows: tuple[bytes, ...],
        written: SourceWrite | None,
        recheck_after: float | None = None,
    ) -> None:
        raise NotImplementedError

    def judge(
        self,
        differences: Spool,
        *,
        resolve_one_sided: bool = False,
        start: float = RECHECK_PROGRESS,
    ) -> Verdicts:
        """Decide every spooled difference by the run's rule (``recheck_rule``) and report
        the ones that still differ (in flight ones with their ``recheck_after``)."""
        verdicts = Verdicts()
        if not differences.count:
            return verdicts
        self.progress(start)
        if self.recheck_rule == WRITE_TIME:
            return self._judge_by_write_time(differences, verdicts, resolve_one_sided, start)
        delay = self.options.recheck_delay_seconds
        if delay > 0:
            time.sleep(delay)
        done = 0
        for batch in differences.batches(VERDICT_BATCH):
            keys = [d[0] for d in batch]
            if delay > 0:
                c_rows, p_rows, writes = self.read_both(keys)
                now_read = zip(keys, c_rows, p_rows, writes, strict=True)
                for key, c_row, p_rows_now, written in now_read:
                    if agree(c_row, p_rows_now):
                        verdicts.transient += 1
                    else:
                        verdicts.mismatches += 1
                        self._emit(key, c_row, p_rows_now, written)
            else:
                if resolve_one_sided:
                    batch = self._resolve_one_sided(batch)
                for key, c_row, p_rows_then, written in batch:
                    if agree(c_row, p_rows_then):
                        verdicts.agreed += 1
                    else:
                        verdicts.mismatches += 1
                        self._emit(key, c_row, p_rows_then, written)
            done += len(batch)
            self.progress(start + (1 - start) * done / differences.count)
        return verdicts

    def _judge_by_write_time(
        self, differences: Spool, verdicts: Verdicts, resolve_one_sided: bool, start: float
    ) -> Verdicts:
        """WRITE_TIME: each difference by its source row's write time (``lag_verdict``);
        those without one wait for the fixed delay, then are read again once."""
        delay = self.options.recheck_delay_seconds
        done = 0
        with Spool() as later:
            for batch in differences.batches(VERDICT_BATCH):
                if resolve_one_sided:
                    batch = self._resolve_one_sided(batch)
                again: list[bytes] = []
                for key, c_row, p_rows, written in batch:
                    if agree(c_row, p_rows):
                        verdicts.agreed += 1
                        continue
                    verdict = self._lag_verdict(c_row, p_rows, written, self.reads_began_at)
                    if verdict.kind == READ_AGAIN:
                        again.append(key)
                    elif verdict.kind == FIXED_DELAY and delay > 0:
                        later.add(key)
                    else:
                        self._decide(verdicts, verdict, key, c_row, p_rows, written)
                self._read_again(again, verdicts)
                done += len(batch)
                self.progress(start + (1 - start) * 0.9 * done / differences.count)
            if later.count:
                time.sleep(delay)
                for keys in later.batches(VERDICT_BATCH):
                    self._read_again(keys, verdicts)
        return verdicts

    def _lag_verdict(
        self,
        c_row: bytes | None,
        p_rows: tuple[bytes, ...],
        written: SourceWrite | None,
        reads_began_at: float,
    ) -> LagVerdict:
        return lag_verdict(
            _kind(c_row, p_rows),
            written if c_row is not None else None,
            now=time.time(),
            budget=self.options.lag_budget_seconds,
            reads_began_at=reads_began_at,
        )

    def _read_again(self, keys: list[bytes], verdicts: Verdicts) -> None:
        """Read ``keys`` now and decide them on what is there now: agreeing, they were
        transient; a difference without a write time is drift (it had its delay)."""
        if not keys:
            return
        c_rows, p_rows, writes = self.read_both(keys)
        for key, c_row, rows, written in zip(keys, c_rows, p_rows, writes, strict=True):
            if agree(c_row, rows):
                verdicts.transient += 1
                continue
            verdict = self._lag_verdict(c_row, rows, written, time.time())
            self._decide(verdicts, verdict, key, c_row, rows, written)

    def _decide(
        self,
        verdicts: Verdicts,
        verdict: LagVerdict,
        key: bytes,
        c_row: bytes | None,
        p_rows: tuple[bytes, ...],
        written: SourceWrite | None,
    ) -> None:
        if verdict.kind == EXPIRED:
            verdicts.expired += 1
        elif verdict.kind == IN_FLIGHT:
            verdicts.in_flight += 1
            self._emit(key, c_row, p_rows, written, verdict.recheck_after)
        else:  # DRIFT, or a fixed-delay kind judged now
            verdicts.mismatches += 1
            self._emit(key, c_row, p_rows, written)

    def _resolve_one_sided(self, batch: list[Diff]) -> list[Diff]:
        """Read the other side of keys seen on one side only (TIMESTAMP_RANGE: the row may
        be there with a timestamp outside the window)."""
        need_c = [d[0] for d in batch if d[1] is None]
        need_p = [d[0] for d in batch if not d[2]]
        c_found, _, w_found = self.read_both(need_c, postgres=False)
        found_c = dict(zip(need_c, zip(c_found, w_found, strict=True), strict=True))
        found_p = dict(zip(need_p, self.read_both(need_p, cassandra=False)[1], strict=True))
        resolved: list[Diff] = []
        for key, c_row, p_rows, written in batch:
            if c_row is None:
                c_row, written = found_c.get(key, (None, None))
            resolved.append((key, c_row, p_rows or found_p.get(key, ()), written))
        return resolved


def _kind(c_row: bytes | None, p_rows: tuple[bytes, ...]) -> str:
    if c_row is None:
        return MISSING_IN_CASSANDRA
    if not p_rows:
        return MISSING_IN_POSTGRES
    return DATA_MISMATCH
