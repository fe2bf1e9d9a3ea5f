"""What cdcrecon stores: the tables it reconciles (``mappings``), the jobs it ran (``jobs``)
and the rows that drifted (``mismatches``, the ledger, with each one's ``history``)."""

from reconciliation.ledger.statuses import (
    KEY_HOLDING_STATUSES,
    OPEN_STATUSES,
    RESOLVED_STATUSES,
)
from reconciliation.models.autorepair import AutoRepairAction
from reconciliation.models.counts import MismatchCount
from reconciliation.models.history import MismatchEvent
from reconciliation.models.jobs import (
    FULL_CHECK_STRATEGIES,
    ReconciliationJob,
    ReconciliationJobQuerySet,
    conclusive_q,
)
from reconciliation.models.mappings import (
    TableMapping,
    Thresholds,
    default_excluded_columns,
    identifier_validator,
    thresholds_for_table,
)
from reconciliation.models.mismatches import (
    CLOSED_STATUSES,
    AlreadyResolved,
    Finding,
    JobFinding,
    Mismatch,
    MismatchQuerySet,
)
from reconciliation.models.segments import JobSegment, SegmentDifference

__all__ = [
    "CLOSED_STATUSES",
    "FULL_CHECK_STRATEGIES",
    "KEY_HOLDING_STATUSES",
    "OPEN_STATUSES",
    "RESOLVED_STATUSES",
    "AlreadyResolved",
    "AutoRepairAction",
    "Finding",
    "JobFinding",
    "JobSegment",
    "Mismatch",
    "MismatchCount",
    "MismatchEvent",
    "MismatchQuerySet",
    "ReconciliationJob",
    "ReconciliationJobQuerySet",
    "SegmentDifference",
    "TableMapping",
    "Thresholds",
    "conclusive_q",
    "default_excluded_columns",
    "identifier_validator",
    "thresholds_for_table",
]
