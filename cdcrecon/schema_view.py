"""``/api/schema/``: the OpenAPI document, readable in a browser.

drf-spectacular answers YAML as ``application/vnd.oai.openapi`` by default, which a browser
downloads instead of showing.  A request that asks for HTML (a browser's ``Accept``) and
names no ``?format=`` gets the JSON rendering as ``application/json`` instead, which every
browser displays inline.  OpenAPI clients and tools are unaffected: ``Accept: */*``,
``application/vnd.oai.openapi[+json]``, ``application/yaml``, ``?format=yaml`` and
``?format=json`` negotiate exactly as before.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.renderers import OpenApiJsonRenderer2
from drf_spectacular.views import SpectacularAPIView
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


def wants_html(request: Request) -> bool:
    accept = request.META.get("HTTP_ACCEPT", "")
    return "text/html" in accept and "format" not in request.query_params


class BrowsableSpectacularAPIView(SpectacularAPIView):
    """SpectacularAPIView that shows the schema as JSON to browsers instead of downloading it."""

    def perform_content_negotiation(
        self, request: Request, force: bool = False
    ) -> tuple[BaseRenderer, str] | Any:
        if wants_html(request):
            renderer = OpenApiJsonRenderer2()
            return renderer, renderer.media_type
        return super().perform_content_negotiation(request, force)
