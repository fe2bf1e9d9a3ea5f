"""Turn DRF's clear-text API tokens into django-rest-knox digests, then drop the clear table.

Each existing ``authtoken_token`` key becomes a knox token with the same value (knox stores
its SHA-512 digest and first 15 characters), so the tokens operators already hold keep
working, now expiring after API_TOKEN_TTL_HOURS from this migration.  The clear-text table
is dropped and DRF authtoken's migration records removed (so re-adding that app would
start clean).  Irreversible by nature: the clear keys are gone.
"""

from django.db import migrations
from django.utils import timezone

CLEAR_TABLE = "authtoken_token"


def hash_clear_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if CLEAR_TABLE not in connection.introspection.table_names():
        return
    from knox.crypto import hash_token
    from knox.settings import CONSTANTS, knox_settings

    AuthToken = apps.get_model("knox", "AuthToken")
    ttl = knox_settings.TOKEN_TTL
    expiry = timezone.now() + ttl if ttl else None
    quoted = schema_editor.quote_name(CLEAR_TABLE)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id FROM {quoted}")
        rows = cursor.fetchall()
    for key, user_id in rows:
        AuthToken.objects.get_or_create(
            digest=hash_token(key),
            defaults={
                "token_key": key[: CONSTANTS.TOKEN_KEY_LENGTH],
                "user_id": user_id,
                "expiry": expiry,
            },
        )
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {quoted}")
        cursor.execute("DELETE FROM django_migrations WHERE app = %s", ["authtoken"])


class Migration(migrations.Migration):
    dependencies = [
        ("reconciliation", "0002_job_phase"),
        ("knox", "0009_extend_authtoken_field"),
    ]

    operations = [
        migrations.RunPython(hash_clear_tokens, migrations.RunPython.noop, elidable=False),
    ]
