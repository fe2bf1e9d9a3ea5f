"""``manage.py drf_create_token USER``: the name the design doc uses; same as create_api_token."""

from __future__ import annotations

from reconciliation.management.commands.create_api_token import Command as CreateApiToken


class Command(CreateApiToken):
    pass
