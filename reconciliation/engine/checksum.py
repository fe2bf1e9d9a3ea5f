"""CHECKSUM: every row of both tables, key by key (``keydiff``)."""

from __future__ import annotations

from reconciliation.engine.core import Engine, strategy
from reconciliation.engine.keydiff import full_diff
from reconciliation.engine.terms import Outcome
from reconciliation.vocabulary import CHECKSUM


@strategy(CHECKSUM)
def run(engine: Engine) -> Outcome:
    return full_diff(engine)
