"""CHECKSUM: every row of both tables, key by key (``keydiff``)."""

from __future__ import annotations

from reconciliation.engine.core import Engine, Outcome
from reconciliation.engine.keydiff import full_diff


def run(engine: Engine) -> Outcome:
    return full_diff(engine)
