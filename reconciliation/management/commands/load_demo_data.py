from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from cdcrecon.conf import settings
from reconciliation import demo
from reconciliation.connections import cassandra_session, target_connection
from reconciliation.registry import ensure_key_columns, get_mapping


class Command(BaseCommand):
    help = "Load the demo tables (users, orders, sessions) with a little drift into both stores."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset", action="store_true", help="Drop and reload the demo tables if they exist."
        )

    def handle(self, *args: Any, reset: bool = False, **options: Any) -> None:
        session = cassandra_session()
        keyspace = settings.cassandra.keyspace
        if demo.is_loaded(session, keyspace) and not reset:
            self.stdout.write(f"Demo data already in keyspace {keyspace} (use --reset to reload).")
        else:
            with target_connection(autocommit=True) as conn:
                for line in demo.load(session, keyspace, conn, settings.target.schema):
                    self.stdout.write(line)
        for table in demo.TABLES:
            if table.name in settings.reconciliation.tables:
                ensure_key_columns(get_mapping(table.name), session)
