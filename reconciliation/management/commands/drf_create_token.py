"""``manage.py drf_create_token [-r] USER``: the name the design doc (and Django REST
framework) uses; the same command as create_api_token, ``-r``/``--reset`` included."""

from __future__ import annotations

from reconciliation.management.commands.create_api_token import Command as CreateApiToken


class Command(CreateApiToken):
    pass
