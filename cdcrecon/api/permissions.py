"""The one permission pattern every app's API uses: each endpoint names the one Django
permission it needs (design §3); an app declares its own classes with ``requires``."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request


def requires(permission: str) -> type[BasePermission]:
    """A DRF permission class: authenticated (else 401) and holding ``permission`` (else 403)."""

    class HasPermission(BasePermission):
        message = f"You need the '{permission}' permission for this."

        def has_permission(self, request: Request, view: Any) -> bool:
            user = request.user
            return bool(user and user.is_authenticated and user.has_perm(permission))

    HasPermission.__name__ = f"Requires_{permission.replace('.', '_')}"
    return HasPermission
