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

# JSON error bodies (`{"error", "detail", "fields"}`) outside the admin.
handler400 = "cdcrecon.api.errors.bad_request"
handler403 = "cdcrecon.api.errors.permission_denied"
handler404 = "cdcrecon.api.errors.page_not_found"
handler500 = "cdcrecon.api.errors.server_error"
