from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from cdcrecon.api.tokens import issue_token


class Command(BaseCommand):
    help = (
        "Create the admin user from DJANGO_SUPERUSER_USERNAME / DJANGO_SUPERUSER_PASSWORD "
        "(admin/admin when unset, for a development machine) unless it exists, and print a new "
        "API token for it (tokens are stored as digests, so an old one cannot be shown again)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "admin")
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD", "admin")
        user_model = get_user_model()
        user = user_model.objects.filter(username=username).first()
        if user is None:
            user = user_model.objects.create_superuser(
                username=username, email="", password=password
            )
            shown = (
                password
                if "DJANGO_SUPERUSER_PASSWORD" not in os.environ
                else "(from DJANGO_SUPERUSER_PASSWORD)"
            )
            self.stdout.write(f"Created admin user {username!r}, password {shown}.")
        instance, token = issue_token(user)
        expiry = (
            f"expires {instance.expiry:%Y-%m-%d %H:%M} UTC" if instance.expiry else "never expires"
        )
        self.stdout.write(f"API token for {username} ({expiry}): {token}")
