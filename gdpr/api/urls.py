from __future__ import annotations

from django.urls import URLPattern, path

from gdpr.api.views import AuditLogListView, RecordErasureView

# /records/audit comes first so that it can never be read as a keyspace/table/key path.
urlpatterns: list[URLPattern] = [
    path("records/audit", AuditLogListView.as_view(), name="audit-log"),
    path(
        "records/<str:keyspace>/<str:table>/<path:primary_key>",
        RecordErasureView.as_view(),
        name="record-erasure",
    ),
]
