"""The diff engine: pure comparison code, no Django.

Public entry points:

* ``strategies.reconcile(strategy, spec, session, connect, options, report, progress)``:
  run one validation strategy over a table; differences go to ``report``.
* ``strategies.recheck_keys(spec, session, connect, options, primary_key_values)``: read
  the given keys back from both stores now and compare them (what a job's transient
  re-check does); a ``Difference`` per key that still differs, None where they agree.
* ``strategies.stored_keys(spec, session, connect, options, primary_key_value)``: the key
  values, as each store holds them, of every row equal to that key (repair, erasure).

Rows are "the same row" by one rule everywhere (merge, SAMPLE, re-check, repair, erasure):
their key columns' compare forms are equal (``records.py``, ``canonical.py``).
"""
