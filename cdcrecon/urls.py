from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerView

from cdcrecon.health import healthz, readyz
from cdcrecon.schema_view import BrowsableSpectacularAPIView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("reconciliation.api.urls")),
    path("", include("gdpr.api.urls")),
    path("api/schema/", BrowsableSpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("", include("django_prometheus.urls")),
]

# JSON 404/500 bodies (`{"error", "detail", "fields"}`) outside the admin.
handler404 = "reconciliation.api.errors.page_not_found"
handler500 = "reconciliation.api.errors.server_error"
