"""The peer: reladiff's hashdiff on the SQL-only half of the same work.

    .venv/bin/python bench/reladiff_peer.py --rows N [--threads 2]

reladiff (PyPI, the ``bench`` extra) cannot read Cassandra, so it compares a PostgreSQL copy
of the source rows (``warehouse_bench_source``, see ``dataset.load_source_copy``) with the
same target table cdcrecon compares (``warehouse_bench``), keyed by ``id``, on the same
columns.  Two databases, so reladiff picks HASHDIFF (checksums of key ranges on both sides,
bisected down to the differing rows); it is set up as its CLI does for
``reladiff DB1 T DB2 T -k id -c ... --threads 2 --algorithm hashdiff --stats``:
``--threads`` connections per database and a thread pool of twice that.

Columns: all nine non-key columns are passed.  reladiff's warnings (it warns about a column
type it does not know) are kept in ``detail.warnings``.

Prints one JSON line: ``{"seconds", "detail"}``; the timer covers connecting, reading the
schemas and the whole diff.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataset import COLUMNS, table_name  # noqa: E402
from stores import SOURCE_DATABASE, target_url  # noqa: E402


class SkippedColumns(logging.Handler):
    """Collects reladiff's and sqeleton's warnings (an unknown column type is one)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def sqlalchemy_style(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


def hashdiff(rows: int, threads: int) -> dict[str, Any]:
    from reladiff import HashDiffer, TableSegment, connect

    warnings = SkippedColumns()
    logging.getLogger().addHandler(warnings)
    name = table_name(rows)
    columns = tuple(c for c in COLUMNS if c != "id")
    started = time.perf_counter()
    databases = [
        connect(sqlalchemy_style(target_url(SOURCE_DATABASE)), threads),
        connect(sqlalchemy_style(target_url()), threads),
    ]
    differ = HashDiffer(threaded=True, max_threadpool_size=threads * 2)
    segments = [
        TableSegment(db, db.parse_table_name(name), ("id",), None, columns) for db in databases
    ]
    with differ.diff_tables(*segments) as diff:
        stats = diff.get_stats_dict()
    seconds = time.perf_counter() - started
    for db in databases:
        db.close()
    return {
        "seconds": seconds,
        "detail": {
            "rows_source": stats["rows_A"],
            "rows_target": stats["rows_B"],
            # MISSING_IN_POSTGRES, MISSING_IN_CASSANDRA, DATA_MISMATCH in cdcrecon's words
            "by_type": {
                "MISSING_IN_POSTGRES": stats["exclusive_A"],
                "MISSING_IN_CASSANDRA": stats["exclusive_B"],
                "DATA_MISMATCH": stats["updated"],
            },
            "warnings": warnings.messages or None,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps(hashdiff(args.rows, args.threads)))


if __name__ == "__main__":
    main()
