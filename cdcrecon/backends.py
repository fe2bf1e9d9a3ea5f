"""The authentication backend django-axes needs first in AUTHENTICATION_BACKENDS."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.http import HttpRequest


class LockoutBackend(AxesStandaloneBackend):
    """django-axes' check, first in AUTHENTICATION_BACKENDS, for logins that come with a
    request (the admin's form and any HTTP login).  A call without one (``Client.login`` in
    tests, a script) has no client address to lock and is left to the next backend rather
    than refused with AxesBackendRequestParameterRequired."""

    def authenticate(  # type: ignore[override]
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)  # type: ignore[no-any-return]
