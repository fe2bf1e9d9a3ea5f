"""The mismatch ledger: one standing difference per (table, primary key), and how it moves.

* ``reads``: a key's rows read again now through the engine, and what a run covered;
* ``inflight``: the later re-check of differences within the CDC lag budget.
"""
