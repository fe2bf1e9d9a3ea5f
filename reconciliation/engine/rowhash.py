"""Comparing equal rows without decoding them: the scans' records by byte form.

Most rows of a CDC target are equal to their source, and most of a scan's time went into
turning each store's values into Python objects and those into compare forms.  For the
value columns whose CQL type has an exact byte form on the target's type (the codecs'
``cassandra_bytes`` and ``byte_forms``; ``Column.hashed``):

* Cassandra hands over each such cell's serialized bytes (``intasblob(qty)``, …: a blob,
  which the driver passes through as ``bytes``), and the row's hash is SHA-256 of the
  ``marshal`` (version 0) of the tuple of those bytes (None for NULL);
* PostgreSQL computes the same hash in SQL while staging (``row_hash_sql``): the same
  ``marshal`` framing (``(`` and the count, then ``s`` + little-endian length + bytes, or
  ``N``) around ``int4send(qty)``, ``uuid_send(owner)``, the text as UTF-8, …, so staging
  moves a key and 16 bytes per row, not its values.

The other value columns are decoded as before, and their compare forms are hashed with the
byte-form digest (BLAKE2b, 16 bytes).  Equal bytes mean equal values (every byte form is
injective), so rows whose hashes agree are equal; rows whose hashes differ are read again by
key and judged by the full type rules (``keydiff.conclude``), so a representation-only
difference (a decimal's scale, a uuid in upper-case text, a timestamp's extra microseconds)
is never reported.  Keys are always decoded: they order and pair the rows.
"""

from __future__ import annotations

import hashlib
import marshal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from reconciliation.engine.cassandra import CassandraTable
from reconciliation.engine.codecs import INLINE_NAMESPACE
from reconciliation.engine.codecs.byteforms import byte_form, fixed_width
from reconciliation.engine.cqlselect import select_column
from reconciliation.engine.identifiers import cql_column
from reconciliation.engine.postgres import PostgresTable, copy_type
from reconciliation.engine.postgres import select_column as pg_select
from reconciliation.engine.records import (
    MARSHAL_VERSION,
    MIN_TOKEN,
    Codec,
    column_expression,
    key_order,
)
from reconciliation.engine.schema import Layout
from reconciliation.engine.unreadable import invalid

DIGEST_SIZE = 16
# A row whose values cannot be read hashes to its side's marker: it never agrees, so it is
# read again and judged value by value.
# The FROM item of a scan's variable-width cells, and its columns' prefix (no table's names).
CELLS = "_cdcrecon_cell"
UNREADABLE = {"cassandra": b"C" * DIGEST_SIZE, "postgres": b"P" * DIGEST_SIZE}

Builder = Callable[[Sequence[Any]], tuple[Any, ...]]


def byte_hash(cells: tuple[bytes | None, ...]) -> bytes:
    """The byte-form digest of a row's hashed cells (as ``row_hash_sql`` computes it)."""
    return hashlib.sha256(marshal.dumps(cells, MARSHAL_VERSION)).digest()[:DIGEST_SIZE]


def combined(digest: bytes, forms: list[Any]) -> bytes:
    """The row hash of a row with decoded columns too: the byte-form digest and their
    compare forms."""
    data = digest + marshal.dumps(forms, MARSHAL_VERSION)
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE).digest()


class Scan:
    """How a key-by-key diff reads its rows: by byte form when the table has hashed value
    columns (and the run allows it), otherwise decoded (``records.Codec``)."""

    def __init__(
        self,
        layout: Layout,
        codec: Codec,
        cassandra: CassandraTable,
        postgres: PostgresTable,
        *,
        enabled: bool,
    ) -> None:
        self.layout = layout
        self.cassandra = cassandra
        self.postgres = postgres
        self.hashed = enabled and bool(layout.hashed_values)
        self.cassandra_selectors: list[str] | None = None
        self.cassandra_record: Builder = codec.cassandra_record
        self.postgres_record: Builder = codec.postgres_record
        if self.hashed:
            self.cassandra_selectors = cassandra_selectors(layout)
            self.cassandra_record = compile_hashed(codec, "cassandra")
            self.postgres_record = compile_hashed(codec, "postgres")
            row_hash = row_hash_sql(layout)
            postgres.hashed_selected = sql.SQL(", ").join(
                [
                    *(pg_select(c) for c in layout.key),
                    row_hash.select,
                    *(pg_select(c) for c in layout.decoded_values),
                ]
            )
            postgres.hashed_from = row_hash.lateral
            postgres.hashed_types = [
                *(copy_type(c) for c in layout.key),
                "bytea",
                *(copy_type(c) for c in layout.decoded_values),
            ]

    def hashes_now(
        self, keys: Sequence[bytes]
    ) -> tuple[list[bytes | None], list[tuple[bytes, ...]]]:
        """Each key's row hash on each side as stored now (None / (): absent), the way the
        scan hashed it: whether a row changed since the scan."""
        forms = [list(marshal.loads(k)) for k in keys]
        c_record, p_record = self.cassandra_record, self.postgres_record
        assert self.cassandra_selectors is not None
        statement = self.cassandra.lookup_statement_of(self.cassandra_selectors)
        found = self.cassandra.lookup_all(forms, lambda row: c_record(row)[1], statement)
        layout = self.layout
        columns = [
            *(pg_select(c, "t") for c in layout.key),
            row_hash_sql(layout, "t", lateral=False).select,
            *(pg_select(c, "t") for c in layout.decoded_values),
        ]
        target = self.postgres.lookup(forms, lambda row: p_record(row)[1], columns=columns)
        return (
            [c_record(rows[0])[2] if rows else None for rows in found],
            [tuple(p_record(row)[2] for row in rows) for rows in target],
        )


def cassandra_selectors(layout: Layout) -> list[str]:
    """What a scan selects after the token: the key (decoded), the hashed value columns'
    serialized bytes, the decoded value columns."""
    hashed = []
    for column in layout.hashed_values:
        found = byte_form(column.cql_type)
        assert found is not None
        hashed.append(found[0].format(cql_column(column.name)))
    return [
        *(select_column(c) for c in layout.key),
        *hashed,
        *(select_column(c) for c in layout.decoded_values),
    ]


def _le32(length: sql.Composable) -> sql.Composable:
    # A little-endian int32, as marshal writes a length.
    return sql.SQL(
        "set_byte(set_byte(set_byte(set_byte('\\x00000000'::bytea, 0, {0} & 255), "
        "1, ({0} >> 8) & 255), 2, ({0} >> 16) & 255), 3, ({0} >> 24) & 255)"
    ).format(length)


@dataclass(frozen=True)
class RowHashSql:
    """A target row's byte-form digest in SQL: ``select`` (an expression of the SELECT
    list) and, for a scan, ``lateral`` (a FROM item computing each variable-width cell once;
    without it they are computed where used, fine for a few rows)."""

    select: sql.Composable
    lateral: sql.Composable | None


def row_hash_sql(layout: Layout, alias: str | None = None, *, lateral: bool = True) -> RowHashSql:
    """``byte_hash`` of a row's hashed cells, computed by the target: each cell framed as
    marshal frames a ``bytes`` (``s``, its little-endian length, the bytes) or None (``N``:
    a NULL byte form).  A fixed-width cell's frame head is a constant."""
    count = len(layout.hashed_values)
    parts: list[sql.Composable] = [sql.Literal(b"(" + count.to_bytes(4, "little"))]
    variable: list[sql.Composable] = []
    for column in layout.hashed_values:
        name = sql.Identifier(alias, column.name) if alias else sql.Identifier(column.name)
        data: sql.Composable = sql.SQL(column.pg_bytes).format(name)
        width = fixed_width(column.pg_bytes)
        if width is not None:
            head = sql.Literal(b"s" + width.to_bytes(4, "little"))
            parts.append(sql.SQL("coalesce({} || {}, '\\x4e'::bytea)").format(head, data))
            continue
        if lateral:
            variable.append(data)
            data = sql.Identifier(CELLS, f"{CELLS}{len(variable) - 1}")
        parts.append(
            sql.SQL("coalesce('\\x73'::bytea || {} || {}, '\\x4e'::bytea)").format(
                _le32(sql.SQL("octet_length({})").format(data)), data
            )
        )
    select = sql.SQL("substring(sha256({}) FROM 1 FOR {})").format(
        sql.SQL(" || ").join(parts), sql.Literal(DIGEST_SIZE)
    )
    if not variable:
        return RowHashSql(select, None)
    # OFFSET 0 keeps the planner from pulling the cells up into each use of them.
    from_item = sql.SQL(", LATERAL (SELECT {} OFFSET 0) AS {}({})").format(
        sql.SQL(", ").join(variable),
        sql.Identifier(CELLS),
        sql.SQL(", ").join(sql.Identifier(f"{CELLS}{i}") for i in range(len(variable))),
    )
    return RowHashSql(select, from_item)


def compile_hashed(codec: Codec, side: str) -> Builder:
    """The record builder of a scan by byte form: ``(order, key bytes, row hash[, None])``.
    Cassandra rows are ``(token, *key, *hashed cells, *decoded values)``
    (``cassandra_selectors``: no write times, ``conclude`` reads them with the keys that
    differ); target rows ``(*key, digest, *decoded values)``."""
    layout = codec.layout
    namespace: dict[str, Any] = {
        **INLINE_NAMESPACE,
        "_dumps": marshal.dumps,
        "_byte_hash": byte_hash,
        "_combined": combined,
        "_token": codec.token_function,
        "_key_order": key_order,
        "_MIN_TOKEN": MIN_TOKEN,
    }
    keys = [
        column_expression(side, c, f"k{i}", f"ck{i}", namespace) for i, c in enumerate(layout.key)
    ]
    decoded = [
        column_expression(side, c, f"d{i}", f"cd{i}", namespace)
        for i, c in enumerate(layout.decoded_values)
    ]
    key_names = [f"k{i}" for i in range(len(keys))]
    decoded_names = [f"d{i}" for i in range(len(decoded))]
    hashed_names = [f"h{i}" for i in range(len(layout.hashed_values))]
    if side == "cassandra":
        names = ["token", *key_names, *hashed_names, *decoded_names]
        digest = f"_byte_hash(({''.join(n + ', ' for n in hashed_names)}))"
    else:
        names = [*key_names, "digest", *decoded_names]
        digest = "digest"
    row_hash = f"_combined({digest}, [{', '.join(decoded)}])" if decoded else digest
    key = "(" + "".join(f"{e}, " for e in keys) + ")"
    version = MARSHAL_VERSION
    lines = [f"    {', '.join(names)}, = row", f"    key = {key}"]
    lines.append(f"    key_bytes = _dumps(key, {version})")
    if codec.token_function is None:
        lines.append("    order = _key_order(key_bytes)")
    elif side == "cassandra":
        lines.append("    order = token")
    else:
        lines.append("    order = None if None in key else _token(key)")
        lines.append("    order = _MIN_TOKEN if order is None else order")
    tail = ", None" if side == "cassandra" else ""  # write times: read with the differing keys
    lines.append(f"    return (order, key_bytes, {row_hash}{tail})")
    source = "\n".join(
        ["def record(row):", "    try:", *("    " + line for line in lines)]
        + ["    except Exception:", "        return _slow(row)", ""]
    )
    namespace["_slow"] = _slow_builder(codec, side)
    exec(compile(source, f"<hashed record builder: {side}>", "exec"), namespace)  # noqa: S102
    return namespace["record"]  # type: ignore[no-any-return]


def _slow_builder(codec: Codec, side: str) -> Builder:
    """A row the fast builder could not convert: its key column by column (an unreadable
    part becomes ``<invalid …>``), its hash the side's marker (it never agrees)."""
    layout = codec.layout
    converters = [codec.safe_converter(side, i) for i in range(len(layout.key))]
    first = 1 if side == "cassandra" else 0
    marker = UNREADABLE[side]

    def record(row: Sequence[Any]) -> tuple[Any, ...]:
        forms = []
        for convert, value in zip(converters, row[first : first + len(converters)], strict=True):
            try:
                forms.append(convert(value))
            except Exception:
                forms.append(invalid(value))
        key = marshal.dumps(tuple(forms), MARSHAL_VERSION)
        order = codec.order(key, forms, row[0] if side == "cassandra" else None)
        if side == "cassandra":
            return (order, key, marker, None)
        return (order, key, marker)

    return record
