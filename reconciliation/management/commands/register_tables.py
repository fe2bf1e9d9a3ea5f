from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from reconciliation.connections import StoreUnavailable, cassandra_session
from reconciliation.registry import TableNotFound, ensure_key_columns, register_configured_tables


class Command(BaseCommand):
    help = "Register every table in RECONCILIATION_TABLES and discover its key from Cassandra."

    def handle(self, *args: Any, **options: Any) -> None:
        mappings = register_configured_tables()
        try:
            session = cassandra_session()
        except StoreUnavailable as exc:
            self.stderr.write(f"Registered {len(mappings)} tables; keys not discovered: {exc}")
            return
        for mapping in mappings:
            try:
                ensure_key_columns(mapping, session)
                keys = ", ".join(mapping.key_columns)
                self.stdout.write(
                    f"{mapping.name}: {mapping.cassandra_keyspace}.{mapping.cassandra_table} key ({keys})"
                )
            except TableNotFound as exc:
                self.stderr.write(f"{mapping.name}: registered, but {exc}")
