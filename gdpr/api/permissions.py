"""The GDPR API's permissions: its own, not the reconciliation app's."""

from __future__ import annotations

from cdcrecon.api.permissions import requires

CanEraseRecords = requires("gdpr.erase_record")
CanViewAuditLog = requires("gdpr.view_auditlogentry")
