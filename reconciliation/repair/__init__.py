"""Writing the reconciled stores back into agreement, always from Cassandra and always audited.

* ``manual``: repair one mismatch now (the admin action and ``POST …/repair``);
* ``policy``: a table's repair policy, run after each conclusive job;
* ``source_changes``: did the source row change since the job captured it;
* ``target_values``: Cassandra values in the form the target's columns take.
"""
