"""Safe identifiers: names reach CQL or SQL only after these checks.

PostgreSQL identifiers are quoted by psycopg (``psycopg.sql.Identifier``).  Cassandra's
driver has no bind parameters for names, so a CQL identifier must match Cassandra's own
rule for names (letters, digits, underscores, at most 48 characters for keyspaces and
tables) and is then quoted by the driver's ``protect_name``.
"""

from __future__ import annotations

import re

from cassandra.metadata import protect_name

_CQL_NAME = re.compile(r"[A-Za-z0-9_]{1,48}")
# Column names may be longer than table names in Cassandra; keep a sane upper bound.
_CQL_COLUMN = re.compile(r"[A-Za-z0-9_]{1,128}")


class UnsafeIdentifier(ValueError):
    """A keyspace, table or column name that is not a plain Cassandra identifier."""


def cql_name(name: str) -> str:
    """A keyspace or table name, checked and quoted for CQL."""
    if not isinstance(name, str) or not _CQL_NAME.fullmatch(name):
        raise UnsafeIdentifier(f"{name!r} is not a valid Cassandra keyspace or table name.")
    return str(protect_name(name))


def cql_column(name: str) -> str:
    """A column name, checked and quoted for CQL."""
    if not isinstance(name, str) or not _CQL_COLUMN.fullmatch(name):
        raise UnsafeIdentifier(f"{name!r} is not a valid Cassandra column name.")
    return str(protect_name(name))


def cql_table(keyspace: str, table: str) -> str:
    return f"{cql_name(keyspace)}.{cql_name(table)}"
