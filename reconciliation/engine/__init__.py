"""The diff engine: pure comparison code, no Django.

Public entry points:

* ``strategies.Engine(spec, session, connect, options, report, progress).run(strategy)``:
  run one validation strategy over a table; differences go to ``report``, the counters (and
  what a SAMPLE drew, ``Outcome.examined_keys``) come back.  ``Engine.read_keys(keys)``
  reads keys back from both stores now, with every row found for each.
* ``strategies.recheck_keys(spec, session, connect, options, primary_key_values)``: read
  the given keys back from both stores now and compare them (what a job's transient
  re-check does); a ``Difference`` per key that still differs, None where they agree.
* ``strategies.stored_keys(spec, session, connect, options, primary_key_value)``: the key
  values, as each store holds them, of every row equal to that key (repair, erasure).

Rows are "the same row" by one rule everywhere (merge, SAMPLE, re-check, repair, erasure):
their key columns' compare forms are equal (``records.py``, ``canonical.py``).
"""
