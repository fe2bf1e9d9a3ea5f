"""Request rates, counted in the shared cache (Redis) so limits hold across workers and hosts.

Three kinds, all DRF throttles named in ``REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"]``:

- ``anon``: anonymous callers per IP (``API_THROTTLE_ANON``);
- ``user``: authenticated callers per user (``API_THROTTLE_USER``);
- ``mutations``: the calls that start work or write to the stores (trigger, repair, recheck,
  erasure), per user and per endpoint (``API_THROTTLE_MUTATIONS``).  A view joins it with
  ``throttle_scope = "trigger"`` (or the :func:`throttle_scope` decorator for a function
  view); a rate set for that scope itself (``DEFAULT_THROTTLE_RATES["trigger"]``) wins over
  the ``mutations`` rate.

Rates are read from the settings at each request (DRF's own classes read them once, at
import), so ``override_settings`` and the test settings apply.  When the cache cannot be
reached the call is let through and a warning logged: a Redis outage must not take the
read API down with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.exceptions import ImproperlyConfigured
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, ScopedRateThrottle, UserRateThrottle

logger = logging.getLogger(__name__)

MUTATIONS = "mutations"

V = TypeVar("V")


class _LiveRateMixin:
    """Read the rate from the current settings; fail open when the cache is unreachable."""

    scope: str | None

    def get_rate(self) -> str | None:
        rates: dict[str, Any] = api_settings.DEFAULT_THROTTLE_RATES
        try:
            return rates[self.scope]  # type: ignore[index,no-any-return]
        except KeyError:
            raise ImproperlyConfigured(f"No throttle rate set for scope {self.scope!r}.") from None

    def allow_request(self, request: Request, view: Any) -> bool:
        try:
            return super().allow_request(request, view)  # type: ignore[misc,no-any-return]
        except (RedisError, OSError) as exc:
            logger.warning("Throttling skipped: the rate cache is unreachable (%s).", exc)
            return True


class AnonThrottle(_LiveRateMixin, AnonRateThrottle):
    """Anonymous callers, per client IP (``NUM_PROXIES`` trusted proxies)."""


class UserThrottle(_LiveRateMixin, UserRateThrottle):
    """Authenticated callers, per user."""


class MutationThrottle(_LiveRateMixin, ScopedRateThrottle):
    """The stricter budget of the endpoints that start work or write, per user and endpoint."""

    def allow_request(self, request: Request, view: Any) -> bool:
        endpoint = getattr(view, self.scope_attr, None)
        if not endpoint:
            return True
        self.endpoint = endpoint
        rates = api_settings.DEFAULT_THROTTLE_RATES
        self.scope = endpoint if endpoint in rates else MUTATIONS
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        # SimpleRateThrottle.allow_request, not ScopedRateThrottle's (which re-reads the scope).
        try:
            return super(ScopedRateThrottle, self).allow_request(request, view)
        except (RedisError, OSError) as exc:
            logger.warning("Throttling skipped: the rate cache is unreachable (%s).", exc)
            return True

    def get_cache_key(self, request: Request, view: Any) -> str:
        if request.user and request.user.is_authenticated:
            ident = str(request.user.pk)
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": f"{MUTATIONS}_{self.endpoint}", "ident": ident}


def throttle_scope(scope: str) -> Callable[[V], V]:
    """Put a view in a throttle scope: an ``APIView`` class or an ``@api_view`` function."""

    def decorate(view: V) -> V:
        target: Any = getattr(view, "cls", view)  # @api_view functions keep their class in .cls
        target.throttle_scope = scope
        return view

    return decorate
