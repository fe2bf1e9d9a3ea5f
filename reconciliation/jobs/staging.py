"""A job's staging table in the app database: the target's rows by Murmur3 token.

STAGE segments write ``(chunk, token, key, row hash)`` records into an UNLOGGED table of
the job's own (``reconciliation_stage_<job uuid hex>``; the name comes from the job's id,
never from user input, and is quoted by ``psycopg.sql.Identifier``); COMPARE segments read
back the records of their token range, in token order, through the token index built once
staging is complete.  A retried chunk first deletes what an earlier attempt wrote, in the
same transaction, so no record is ever staged twice.  The table is dropped when the job
completes; a FAILED job keeps it, so that a resume does not stage again.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterable

from django.db import connection
from psycopg import sql

from reconciliation.engine.records import MIN_TOKEN
from reconciliation.models import ReconciliationJob

RECORD_TYPES = ["int8", "bytea", "bytea"]


PREFIX = "reconciliation_stage_"


def table_name(job: ReconciliationJob) -> str:
    return f"{PREFIX}{job.pk.hex}"


def job_id_of(name: str) -> uuid.UUID | None:
    """The job a staging table belongs to (None for a name that is not one)."""
    try:
        return uuid.UUID(hex=name.removeprefix(PREFIX))
    except ValueError:
        return None


def _table(job: ReconciliationJob) -> sql.Identifier:
    return sql.Identifier(table_name(job))


def exists(job: ReconciliationJob) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table_name(job)])
        return bool(cursor.fetchone()[0])


def create(job: ReconciliationJob) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            sql.SQL(
                "CREATE UNLOGGED TABLE IF NOT EXISTS {} (chunk integer NOT NULL, "
                "token bigint NOT NULL, key bytea NOT NULL, row bytea NOT NULL)"
            ).format(_table(job))
        )


def index(job: ReconciliationJob) -> None:
    """Index the staged records by token (once every chunk is in: one sort, not one
    insertion per record) and give the planner the table's statistics."""
    with connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (token)").format(
                sql.Identifier(f"{table_name(job)}_token"), _table(job)
            )
        )
        cursor.execute(sql.SQL("ANALYZE {}").format(_table(job)))


def drop(job: ReconciliationJob) -> None:
    drop_table(table_name(job))


def drop_table(name: str) -> None:
    if job_id_of(name) is None:  # only ever a staging table
        raise ValueError(f"{name!r} is not a staging table.")
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))


def write_chunk(
    job: ReconciliationJob, chunk: int, records: Iterable[tuple[int, bytes, bytes]]
) -> int:
    """Replace chunk ``chunk``'s records (call inside a transaction); how many were written."""
    count = 0
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("DELETE FROM {} WHERE chunk = %s").format(_table(job)), [chunk])
        statement = sql.SQL("COPY {} (chunk, token, key, row) FROM STDIN (FORMAT BINARY)")
        with cursor.copy(statement.format(_table(job))) as copy:
            copy.set_types(["int4", *RECORD_TYPES])
            for token, key, row in records:
                copy.write_row((chunk, token, key, row))
                count += 1
    return count


def read_range(
    job: ReconciliationJob, start: int, end: int
) -> Generator[tuple[int, bytes, bytes], None, None]:
    """The staged records with ``start < token <= end``, in token order (a target row with
    no token, its partition key NULL, is staged at MIN_TOKEN: the first range has it)."""
    low = sql.SQL(">=" if start == MIN_TOKEN else ">")
    statement = sql.SQL(
        "COPY (SELECT token, key, row FROM {} WHERE token {} {} AND token <= {} ORDER BY token)"
        " TO STDOUT (FORMAT BINARY)"
    ).format(_table(job), low, sql.Literal(int(start)), sql.Literal(int(end)))
    # Django's connection (the same transaction as the staging, in tests too); a read
    # abandoned half-way is cancelled and drained by psycopg, leaving the connection usable.
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types(RECORD_TYPES)
        yield from copy.rows()
