"""Writing the reconciled stores back into agreement, always from Cassandra and always audited.

* ``manual``: repair one mismatch now (the admin action and ``POST …/repair``);
* ``policy``: a table's repair policy, run after each conclusive job;
* ``runs``: a policy's run as its job shows it, and what a lost run leaves behind;
* ``audit``: a repair attempt's audit entry, from its start to its end;
* ``target_rows``: the target table's columns and the SQL on one row (lock, upsert, delete);
* ``source_changes``: did the source row change since the job captured it;
* ``target_values``: Cassandra values in the form the target's columns take.
"""
