"""The reconciliation API's permissions (the pattern is ``cdcrecon.api.permissions.requires``)."""

from __future__ import annotations

from cdcrecon.api.permissions import requires

CanViewJobs = requires("reconciliation.view_reconciliationjob")
CanTriggerJobs = requires("reconciliation.add_reconciliationjob")
CanResolveMismatches = requires("reconciliation.change_mismatch")
CanRepairMismatches = requires("reconciliation.repair_mismatch")
CanViewTables = requires("reconciliation.view_tablemapping")
CanChangeTables = requires("reconciliation.change_tablemapping")
