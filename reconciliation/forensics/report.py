"""Forensics of a job's differences or of a table's open ones: the ledger rows turned into
``findings.Fact`` and analysed (``findings.analyse``; the rules live there).

Reads at most ``MAX_DIFFERENCES`` rows (the newest), in one streamed query: the answer then
says it looked at a sample (``analyzed`` < ``total``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

import psycopg
from django.db.models import QuerySet
from psycopg import sql

from reconciliation.choices import JobStatus, MismatchType, ResolutionStatus
from reconciliation.connections import StoreUnavailable, target_connection
from reconciliation.engine.keys import BadKey, split_key
from reconciliation.forensics.rules import Fact, analyse
from reconciliation.models import Mismatch, ReconciliationJob, TableMapping
from reconciliation.repair.source_changes import canonical_equal

MAX_DIFFERENCES = 200_000
#: The pipeline's bookkeeping column on a copy: when its source row expires by TTL in Cassandra.
COPY_EXPIRES_AT = "_cdc_expires_at"
_EXPIRY_CHUNK = 1000

log = logging.getLogger(__name__)

_FIELDS = (
    "mismatch_type",
    "primary_key_value",
    "source_write_time",
    "source_ttl_seconds",
    "cassandra_data",
    "postgres_data",
    "resolution_status",
    "recheck_after",
)


class JobStillRunning(Exception):
    """Forensics wait for the job's verdicts."""


def differing_columns(
    cassandra: dict[str, Any] | None, postgres: dict[str, Any] | None, key: Iterable[str]
) -> frozenset[str] | None:
    """The non-key columns whose values differ between the two captured rows."""
    if cassandra is None or postgres is None:
        return None
    skip = set(key)
    return frozenset(
        name
        for name in set(cassandra) | set(postgres)
        if name not in skip and not canonical_equal(cassandra.get(name), postgres.get(name))
    )


def _partition(text: str, mapping: TableMapping | None) -> tuple[Any, ...]:
    if mapping is None or not mapping.partition_key_columns:
        return (text,)
    try:
        parts = split_key(text, len(mapping.key_columns))
    except BadKey:
        return (text,)
    return tuple(parts[: len(mapping.partition_key_columns)])


def _copy_expiries(mapping: TableMapping, keys: list[str]) -> dict[str, dt.datetime]:
    """For rows only the target has: when their copies say the source row expires by TTL
    (``_cdc_expires_at``, kept by the pipeline's sink), by key text. An expiry never reaches
    CDC, so such a row is not a lost delete. Empty when the copy keeps no such column or the
    target cannot be read (forensics then says what it can without it)."""
    columns = mapping.key_columns
    if not keys or not columns:
        return {}
    table = sql.Identifier(mapping.postgres_schema, mapping.postgres_table)
    texts = [split_key(k, len(columns)) if len(columns) > 1 else [k] for k in keys]
    by_tuple = {tuple(t): k for t, k in zip(texts, keys, strict=True)}
    found: dict[str, dt.datetime] = {}
    try:
        with target_connection(autocommit=True) as conn:
            has = conn.execute(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = %s AND column_name = %s",
                (mapping.postgres_schema, mapping.postgres_table, COPY_EXPIRES_AT),
            ).fetchone()
            if has is None:
                return {}
            wanted = sql.SQL(", ").join(
                sql.SQL("{}::text").format(sql.Identifier(c)) for c in columns
            )
            unnest = sql.SQL(", ").join(sql.SQL("%s::text[]") for _ in columns)
            query = sql.SQL(
                "SELECT {wanted}, {expires} FROM {table} WHERE ({wanted}) IN "
                "(SELECT * FROM unnest({unnest})) AND {expires} IS NOT NULL"
            ).format(
                wanted=wanted, expires=sql.Identifier(COPY_EXPIRES_AT), table=table, unnest=unnest
            )
            for start in range(0, len(texts), _EXPIRY_CHUNK):
                chunk = texts[start : start + _EXPIRY_CHUNK]
                params = [[t[i] for t in chunk] for i in range(len(columns))]
                for row in conn.execute(query, params):
                    key = by_tuple.get(tuple(row[:-1]))
                    if key is not None:
                        found[key] = row[-1]
    except (StoreUnavailable, psycopg.Error, BadKey) as exc:
        log.warning("forensics: could not read %s from the target: %s", COPY_EXPIRES_AT, exc)
        return {}
    return found


def facts(rows: QuerySet[Mismatch], mapping: TableMapping | None) -> list[Fact]:
    found = _facts(rows, mapping)
    only_in_target = [
        key for key, f in found if f.mismatch_type == MismatchType.MISSING_IN_CASSANDRA
    ]
    expiries = _copy_expiries(mapping, only_in_target) if mapping is not None else {}
    return [
        dataclasses.replace(f, copy_expires_at=expiries[key]) if key in expiries else f
        for key, f in found
    ]


def _facts(rows: QuerySet[Mismatch], mapping: TableMapping | None) -> list[tuple[str, Fact]]:
    key = mapping.key_columns if mapping is not None else []
    found = []
    for row in rows.values_list(*_FIELDS).iterator(chunk_size=5000):
        kind, text, written, ttl, c_data, p_data, status, recheck_after = row
        found.append(
            (
                text,
                Fact(
                    mismatch_type=kind,
                    partition=_partition(text, mapping),
                    written_at=written,
                    ttl_seconds=ttl,
                    differing=differing_columns(c_data, p_data, key)
                    if kind == MismatchType.DATA_MISMATCH
                    else None,
                    in_flight=status == ResolutionStatus.IN_FLIGHT,
                    recheck_after=recheck_after,
                ),
            )
        )
    return found


def _report(
    rows: QuerySet[Mismatch], table: str, expired: int, extra: dict[str, Any]
) -> dict[str, Any]:
    mapping = TableMapping.objects.filter(name=table).first()
    total = rows.count()
    sample = rows.order_by("-last_seen_at", "mismatch_id")[:MAX_DIFFERENCES]
    analysis = analyse(facts(sample, mapping), expired=expired)
    return {
        **extra,
        "table": table,
        "total": total,
        "analyzed": analysis.total,
        **{k: v for k, v in analysis.as_dict().items() if k != "total"},
    }


def job_forensics(job: ReconciliationJob) -> dict[str, Any]:
    """What the differences ``job`` found say (JobStillRunning while it runs)."""
    if job.status == JobStatus.RUNNING:
        raise JobStillRunning(
            f"Job {job.job_id} is still running: its differences are not decided yet. "
            "Ask again once it has completed."
        )
    rows = Mismatch.objects.filter(findings__job=job)
    return _report(
        rows, job.table_name, job.expired_count, {"job_id": str(job.job_id), "scope": "job"}
    )


def table_forensics(table: str) -> dict[str, Any]:
    """What the open differences of ``table`` in the ledger say (in-flight ones included)."""
    rows = Mismatch.objects.filter(
        table_name=table,
        resolution_status__in=[
            ResolutionStatus.PENDING,
            ResolutionStatus.IGNORED,
            ResolutionStatus.IN_FLIGHT,
        ],
    )
    return _report(rows, table, 0, {"job_id": None, "scope": "open"})
