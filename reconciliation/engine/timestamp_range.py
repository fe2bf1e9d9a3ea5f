"""TIMESTAMP_RANGE: the key-by-key diff (``keydiff``) of the rows whose timestamp column
falls in a window, on either side.

A key seen in the window on one side only is looked up on the other side before it is
reported (its row may be there with a timestamp outside the window).  Without ``from``
the window is the last scheduling interval plus a small overlap, ending now: ``window``
fixes it once, so every piece of one job checks the same window.
"""

from __future__ import annotations

import datetime as dt

from reconciliation.engine.core import Engine, strategy
from reconciliation.engine.keydiff import full_diff
from reconciliation.engine.schema import SchemaError, Window
from reconciliation.engine.terms import Outcome
from reconciliation.vocabulary import TIMESTAMP_RANGE


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def window(engine: Engine) -> Window:
    """The window this run checks, its column checked on both tables (SchemaError)."""
    options = engine.options
    spec, layout = engine.spec, engine.layout
    end = options.window_to or dt.datetime.now(dt.UTC)
    span = dt.timedelta(minutes=options.interval_minutes + options.window_overlap_minutes)
    start = options.window_from or end - span
    if start >= end:
        raise SchemaError(f"The window's start {iso(start)} is not before its end {iso(end)}.")
    column = spec.timestamp_column
    types = layout.cassandra_types
    if column not in types:
        raise SchemaError(f"Timestamp column {column!r} does not exist in {spec.cassandra_label}.")
    if types[column].name != "timestamp":
        raise SchemaError(
            f"Timestamp column {column!r} of {spec.cassandra_label} is "
            f"{types[column]}, not timestamp."
        )
    if column not in layout.postgres_types:
        raise SchemaError(
            f"Timestamp column {column!r} is missing on the target table {spec.postgres_label}."
        )
    return Window(column, start, end)


def parameters(checked: Window) -> dict[str, str]:
    """The window as the job records it."""
    return {"from": iso(checked.start), "to": iso(checked.end)}


@strategy(TIMESTAMP_RANGE)
def run(engine: Engine) -> Outcome:
    checked = window(engine)
    outcome = full_diff(engine, checked)
    outcome.parameters = parameters(checked)
    return outcome
