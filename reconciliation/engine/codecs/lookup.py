"""How the target finds a key: a lookup predicate per (CQL type, PostgreSQL type) of a key
column, which each codec lists in its ``key_filters``.

A ``KeyFilter`` is an SQL template over ``{c}`` (the column) and ``{x}`` (the key's text
parameter), and ``param``, from the key's compare form to that text (or ``IMPOSSIBLE``
when no row of the column can equal it).  Every target value equal to the key under the
engine's key equality satisfies it; it may let others through too (the engine checks the
key bytes).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from reconciliation.engine.unreadable import is_unreadable

IMPOSSIBLE = object()  # a key value that no row of this column can equal
INT8 = 2**63
# The largest epoch milliseconds PostgreSQL's interval arithmetic takes without overflow.
MAX_MS = 9_000_000_000_000_000
# Day numbers PostgreSQL's date holds (4713 BC to 5874897 AD).
MIN_DAYS, MAX_DAYS = -2_440_000, 2_140_000_000
TEXT_COLUMNS = ("text", "varchar", "bpchar", "name")
MS_RANGE = (
    "{c} >= {epoch} + {x}::int8 * interval '1 millisecond' AND "
    "{c} < {epoch} + ({x}::int8 + 1) * interval '1 millisecond'"
)


@dataclass(frozen=True)
class KeyFilter:
    template: str
    param: Callable[[Any], Any]

    def predicate(self, column: sql.Composable, value: sql.Composable) -> sql.Composable:
        return sql.SQL(self.template).format(c=column, x=value)


def guard(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def param(value: Any) -> Any:
        if value is None or is_unreadable(value):
            return IMPOSSIBLE
        try:
            return convert(value)
        except (TypeError, ValueError, ArithmeticError, OverflowError):
            return IMPOSSIBLE

    return param


def int_param(limit: int | None) -> Callable[[Any], Any]:
    def param(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            return IMPOSSIBLE
        if limit is not None and not -limit <= value < limit:
            return IMPOSSIBLE
        return str(value)

    return guard(param)


def strings(value: Any) -> Any:
    return value if isinstance(value, str) else IMPOSSIBLE


def float_param(value: Any) -> Any:
    if isinstance(value, str):  # NaN, Infinity, -Infinity
        return value
    if not isinstance(value, float) or math.isinf(value):
        return IMPOSSIBLE
    return repr(value)


def ms_param(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_MS:
        return IMPOSSIBLE
    return str(value)


def days_param(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        return IMPOSSIBLE
    return str(value) if MIN_DAYS <= value <= MAX_DAYS else IMPOSSIBLE


def text_filters() -> dict[str, KeyFilter]:
    """A text key in any of the target's text columns (bpchar compared as bpchar)."""
    return {
        pg: KeyFilter("{c} = {x}::" + ("bpchar" if pg == "bpchar" else "text"), guard(strings))
        for pg in TEXT_COLUMNS
    }
