"""The operator's home: mismatches, jobs and table mappings in the Django admin.

One module per model; importing this package registers them.  Nothing here edits captured
data or deletes a mismatch or a job.  Every state change goes through the same model methods
and plain functions the API uses: ``Mismatch.resolve`` and ``reopen``,
``reconciliation.repair.repair_mismatch``, ``reconciliation.jobs.create_job`` and
``resume_job``.
"""

from reconciliation.admin import jobs, mappings, mismatches, tokens

__all__ = ["jobs", "mappings", "mismatches", "tokens"]
