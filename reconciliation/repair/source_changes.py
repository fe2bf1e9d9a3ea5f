"""Did a mismatch's source row change since it was detected?  The Cassandra row as read now,
in the engine's canonical form, compared column by column with what the job captured
(repair's note and its upsert-or-delete choice; the diff page's "differs" marks)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cassandra.cluster import Session

from reconciliation.choices import MismatchType
from reconciliation.engine.cqltypes import CqlType, UnsupportedType, parse_cql_type
from reconciliation.engine.readable import to_canonical
from reconciliation.engine.schema import cassandra_udts
from reconciliation.models import Mismatch, TableMapping

Row = dict[str, Any]


class SchemaProblem(Exception):
    """A column the repair cannot read or compare (its type, or the target's, does not fit)."""


@dataclass(frozen=True)
class SourceRow:
    """The Cassandra row now, in the engine's canonical form (``engine/canonical.py``) so
    that it compares exactly with ``Mismatch.cassandra_data``: one definition of equal."""

    values: dict[str, Any]


def column_types(
    session: Session, mapping: TableMapping, cql_types: Mapping[str, str]
) -> dict[str, CqlType]:
    """The parsed CQL type of every column (the keyspace's UDTs read only when a column
    needs them); ``SchemaProblem`` naming a column whose type cdcrecon cannot compare."""
    udts: dict[str, tuple[list[str], list[str]]] | None = None
    types: dict[str, CqlType] = {}
    for name, type_text in cql_types.items():
        try:
            try:
                types[name] = parse_cql_type(type_text, udts)
            except UnsupportedType:
                if udts is not None:
                    raise
                udts = cassandra_udts(session, mapping.cassandra_keyspace)
                types[name] = parse_cql_type(type_text, udts)
        except (UnsupportedType, ValueError) as exc:
            raise SchemaProblem(
                f"Column {name!r} ({type_text or 'unknown type'}) cannot be compared: {exc}"
            ) from exc
    return types


def canonical_source_row(
    session: Session, mapping: TableMapping, cql_types: Mapping[str, str], row: Row | None
) -> SourceRow | None:
    if row is None:
        return None
    types = column_types(session, mapping, {name: cql_types.get(name, "") for name in row})
    values: dict[str, Any] = {}
    for name, value in row.items():
        try:
            values[name] = to_canonical(types[name], value)
        except (ValueError, TypeError) as exc:
            raise SchemaProblem(
                f"Column {name!r} ({cql_types.get(name) or 'unknown type'}) cannot be "
                f"compared: {exc}"
            ) from exc
    return SourceRow(values)


def source_changes(
    mismatch: Mismatch, source: SourceRow | None, columns: Sequence[str]
) -> list[str] | None:
    """The columns that differ from what the job captured; None when nothing changed.

    ``["(row created)"]`` / ``["(row deleted)"]`` when the row appeared or vanished.
    """
    captured = mismatch.cassandra_data
    expected_absent = mismatch.mismatch_type == MismatchType.MISSING_IN_CASSANDRA
    if expected_absent:
        return ["(row created)"] if source is not None else None
    if source is None:
        return ["(row deleted)"]
    if not isinstance(captured, dict):
        return None  # nothing captured to compare with (e.g. scrubbed by an erasure)
    changed = []
    for column in columns:
        before, now = captured.get(column), source.values.get(column)
        if not canonical_equal(before, now):
            changed.append(column)
    return changed or None


def canonical_equal(a: Any, b: Any) -> bool:
    """Equality of two canonical values (both sides of a mismatch are stored canonical)."""
    return a == b or (_is_empty(a) and _is_empty(b))


def _is_empty(value: Any) -> bool:
    return value is None or value == [] or value == {}
