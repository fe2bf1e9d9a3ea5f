from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = (
        "Create the admin user from DJANGO_SUPERUSER_USERNAME / DJANGO_SUPERUSER_PASSWORD "
        "(admin/admin when unset, for a development machine) unless it exists, and print its API token."
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
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(f"API token for {username}: {token.key}")
