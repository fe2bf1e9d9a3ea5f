"""Values that could not be read, in either store: how they are marked, found and counted.

A value that has no compare form (``'five'`` in a text column mapped to an int, PostgreSQL's
``infinity`` timestamp, JSON that is not the column's shape) becomes the string
``<invalid …>``.  It equals no readable value, so the row is reported as a difference, and
the engine counts it apart so people see *why* the row differs.
"""

from __future__ import annotations

from typing import Any

# How the target's SELECT hands over values it cannot turn into a compare form
# (``postgres.py``): infinite timestamps and dates become the extremes of their integer.
_MS_INFINITY, _MS_MINUS_INFINITY = 2**63 - 1, -(2**63)
_DAYS_INFINITY, _DAYS_MINUS_INFINITY = 2**31 - 1, -(2**31)


def invalid(value: Any) -> str:
    """The marker of ``value``, which could not be read as its column's type."""
    # Only made for non-text types, whose valid compare forms are never such a string.
    return f"<invalid {value!r}>"


def finite_ms(value: int) -> Any:
    """Epoch milliseconds from the target's SELECT, its ±infinity marked unreadable."""
    if value == _MS_INFINITY or value == _MS_MINUS_INFINITY:
        return invalid("infinity" if value > 0 else "-infinity")
    return value


def finite_days(value: int) -> Any:
    """A day number from the target's SELECT, its ±infinity marked unreadable."""
    if value == _DAYS_INFINITY or value == _DAYS_MINUS_INFINITY:
        return invalid("infinity" if value > 0 else "-infinity")
    return value


def is_unreadable(value: Any) -> bool:
    """A compare or canonical value that stands for a value that could not be read."""
    return isinstance(value, str) and value.startswith("<invalid ")


def count_unreadable(value: Any) -> int:
    """How many unreadable values a canonical value holds (nested ones too)."""
    if is_unreadable(value):
        return 1
    if isinstance(value, list):
        return sum(count_unreadable(v) for v in value)
    if isinstance(value, dict):
        return sum(count_unreadable(v) for v in value.values())
    return 0
