"""A job's staging table in the app database: the target's rows, by token range.

A STAGE segment reads one block range of the target and turns each row into a record
``(token, key bytes, row hash)`` (``engine.stage_records``).  It takes them
``BATCH_RECORDS`` at a time, sorts each batch into the job's COMPARE token ranges and
writes one marshalled, sorted block per range: rows ``(range_number, chunk, part,
records)`` of an UNLOGGED table of the job's own (``reconciliation_stage_<job uuid hex>``;
the name comes from the job's id, never from user input, and is quoted by
``psycopg.sql.Identifier``).  A COMPARE segment reads its range's blocks (one primary-key
lookup) and sorts them together (timsort merges sorted blocks in about linear time).
Writing and reading blocks rather than a row per record keeps the app database's work per
record to a few bytes of I/O: no per-row insert, no index entry, no per-row fetch.  (Each
chunk writes a block per range, so a table split into C chunks and R ranges stages C × R
blocks: about ``BATCH_RECORDS / R`` records each at worst.)

A retried chunk first deletes what an earlier attempt wrote, in the same transaction, so no
record is ever staged twice.  The table is dropped when the job completes; a FAILED job keeps
it, so that a resume does not stage again.
"""

from __future__ import annotations

import bisect
import itertools
import marshal
import uuid
from collections.abc import Iterable, Sequence

from django.db import connection
from psycopg import sql

from reconciliation.engine.merge import Record
from reconciliation.engine.records import MARSHAL_VERSION
from reconciliation.models import ReconciliationJob

BATCH_RECORDS = 50_000


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
                "CREATE UNLOGGED TABLE IF NOT EXISTS {} (range_number integer NOT NULL, "
                "chunk integer NOT NULL, part integer NOT NULL, records bytea NOT NULL, "
                "PRIMARY KEY (range_number, chunk, part))"
            ).format(_table(job))
        )
        # Marshalled records barely compress: store them as they are, without pglz's CPU.
        cursor.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN records SET STORAGE EXTERNAL").format(_table(job))
        )


def drop(job: ReconciliationJob) -> None:
    drop_table(table_name(job))


def drop_table(name: str) -> None:
    if job_id_of(name) is None:  # only ever a staging table
        raise ValueError(f"{name!r} is not a staging table.")
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))


def by_range(records: Iterable[Record], ends: Sequence[int]) -> dict[int, list[Record]]:
    """Records grouped by the token range ``(previous end, end]`` they fall in (range
    numbers are indexes into ``ends``, sorted ascending; the first range also takes a
    token equal to its start), each group sorted."""
    groups: dict[int, list[Record]] = {}
    last = len(ends) - 1
    for record in records:
        groups.setdefault(min(bisect.bisect_left(ends, record[0]), last), []).append(record)
    for group in groups.values():
        group.sort()
    return groups


def write_chunk(
    job: ReconciliationJob, chunk: int, records: Iterable[Record], ends: Sequence[int]
) -> int:
    """Replace chunk ``chunk``'s staged records (call inside a transaction); how many were
    written.  ``ends``: the COMPARE ranges' ends, in order.  Records are grouped
    ``BATCH_RECORDS`` at a time, so memory stays bounded whatever the chunk's size."""
    statement = sql.SQL(
        "COPY {} (range_number, chunk, part, records) FROM STDIN (FORMAT BINARY)"
    ).format(_table(job))
    parts: dict[int, int] = {}
    written = 0
    records = iter(records)
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("DELETE FROM {} WHERE chunk = %s").format(_table(job)), [chunk])
        with cursor.copy(statement) as copy:
            copy.set_types(["int4", "int4", "int4", "bytea"])
            while batch := list(itertools.islice(records, BATCH_RECORDS)):
                for number, group in by_range(batch, ends).items():
                    part = parts[number] = parts.get(number, -1) + 1
                    copy.write_row((number, chunk, part, marshal.dumps(group, MARSHAL_VERSION)))
                written += len(batch)
    return written


def read_range(job: ReconciliationJob, number: int) -> list[Record]:
    """The staged records of COMPARE range ``number``, in token order."""
    with connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("SELECT records FROM {} WHERE range_number = %s").format(_table(job)),
            [number],
        )
        records: list[Record] = []
        while row := cursor.fetchone():
            records.extend(marshal.loads(row[0]))
    records.sort()  # sorted blocks: timsort merges their runs
    return records
