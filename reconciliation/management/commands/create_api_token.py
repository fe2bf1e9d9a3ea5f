"""``manage.py create_api_token USER``: a new API token (django-rest-knox), printed once."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cdcrecon.api.tokens import issue_token


class Command(BaseCommand):
    help = (
        "Issue a new API token for USER and print it (only its digest is stored, so this is "
        "the only time it is shown). Tokens expire after API_TOKEN_TTL_HOURS unless "
        "--ttl-hours says otherwise (0: never). Revoke tokens in the admin (Auth tokens)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="The user the token acts as.")
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
        if hours is None:
            instance, token = issue_token(user)
        else:
            instance, token = issue_token(user, dt.timedelta(hours=hours) if hours else None)
        expiry = (
            f"expires {instance.expiry:%Y-%m-%d %H:%M} UTC" if instance.expiry else "never expires"
        )
        self.stdout.write(f"API token for {username} ({expiry}): {token}")
