"""``manage.py create_api_token [-r] USER``: a new API token (django-rest-knox), printed once.

``-r``/``--reset`` regenerates, as Django REST framework's ``drf_create_token -r`` does: the
user's earlier tokens stop working.  Without it the earlier tokens stay valid (only their
digests are stored, so an existing token cannot be shown again: a new one is issued).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cdcrecon.api.tokens import issue_token, reset_token


class Command(BaseCommand):
    help = (
        "Issue a new API token for USER and print it (only its digest is stored, so this is "
        "the only time it is shown). Tokens expire after API_TOKEN_TTL_HOURS unless "
        "--ttl-hours says otherwise (0: never). -r/--reset revokes USER's earlier tokens "
        "(regenerate a leaked token); without it they stay valid. Revoke single tokens in "
        "the admin (Auth tokens)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="The user the token acts as.")
        parser.add_argument(
            "-r",
            "--reset",
            action="store_true",
            help="Regenerate: revoke USER's earlier tokens, then issue the new one.",
        )
        parser.add_argument(
            "--ttl-hours",
            type=float,
            default=None,
            help="Hours until the token expires (default API_TOKEN_TTL_HOURS; 0: never).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"]
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        hours = options["ttl_hours"]
        if hours is not None and hours < 0:
            raise CommandError("--ttl-hours must be >= 0 (0: never expires).")
        ttl: dt.timedelta | None | object = ...
        if hours is not None:
            ttl = dt.timedelta(hours=hours) if hours else None
        if options["reset"]:
            instance, token, revoked = reset_token(user, ttl)
        else:
            (instance, token), revoked = issue_token(user, ttl), None
        expiry = (
            f"expires {instance.expiry:%Y-%m-%d %H:%M} UTC" if instance.expiry else "never expires"
        )
        if revoked is not None:
            expiry += f"; {revoked} earlier token{'' if revoked == 1 else 's'} revoked"
        self.stdout.write(f"API token for {username} ({expiry}): {token}")
