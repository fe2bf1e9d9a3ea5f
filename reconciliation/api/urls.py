"""Routes of the guide's API, without trailing slashes (a POST is never redirected)."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from reconciliation.api.forensics import JobForensicsView, TableForensicsView
from reconciliation.api.history import MismatchHistoryView
from reconciliation.api.mismatches import MismatchViewSet
from reconciliation.api.repair import repair_mismatch_view
from reconciliation.api.tables import TableViewSet
from reconciliation.api.trigger import TriggerView
from reconciliation.api.views import ReconciliationJobViewSet

router = SimpleRouter(trailing_slash=False)
router.register("reconciliation/jobs", ReconciliationJobViewSet, basename="job")
router.register("reconciliation/mismatches", MismatchViewSet, basename="mismatch")
router.register("reconciliation/tables", TableViewSet, basename="table")

urlpatterns = [
    path("reconciliation/trigger", TriggerView.as_view(), name="reconciliation-trigger"),
    path(
        "reconciliation/jobs/<str:job_id>/forensics",
        JobForensicsView.as_view(),
        name="job-forensics",
    ),
    path("reconciliation/forensics", TableForensicsView.as_view(), name="table-forensics"),
    path(
        "reconciliation/mismatches/<str:mismatch_id>/repair",
        repair_mismatch_view,
        name="mismatch-repair",
    ),
    path(
        "reconciliation/mismatches/<str:mismatch_id>/history",
        MismatchHistoryView.as_view(),
        name="mismatch-history",
    ),
    *router.urls,
]
