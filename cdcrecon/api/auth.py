from __future__ import annotations

from rest_framework.authentication import TokenAuthentication


class BearerTokenAuthentication(TokenAuthentication):
    """DRF tokens sent as ``Authorization: Bearer <token>`` (tokens: manage.py drf_create_token)."""

    keyword = "Bearer"
