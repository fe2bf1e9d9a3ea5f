"""CHECKSUM: every row of both tables, key by key (``keydiff``)."""

from __future__ import annotations

from reconciliation.engine.core import CHECKSUM, Engine, Outcome, strategy
from reconciliation.engine.keydiff import full_diff


@strategy(CHECKSUM)
def run(engine: Engine) -> Outcome:
    return full_diff(engine)
