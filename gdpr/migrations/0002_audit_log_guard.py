"""The audit log is append-only, enforced by PostgreSQL itself.

A trigger on ``_cdc_audit_log`` rejects every DELETE, every UPDATE of an entry that is
already completed, and any UPDATE that rewrites who asked for what (requester, reason,
keyspace, table, key, action, request time) even while the entry is PENDING.  Two UPDATEs
are allowed:

* recording the outcome on a PENDING entry (statuses, errors, details, completed_at);
* a GDPR redaction of a completed entry: ``details`` only loses keys (a repair's copies of
  the row) and gains a ``_redacted`` note, once; every other column stays as it was.

TRUNCATE is left alone: test databases are flushed with it.
"""

from django.db import migrations

GUARD = r"""
CREATE OR REPLACE FUNCTION _cdc_audit_log_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'The audit log is append-only: entry % cannot be deleted.', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF OLD.completed_at IS NOT NULL THEN
        IF (to_jsonb(NEW) - 'details') = (to_jsonb(OLD) - 'details')
            AND NOT (OLD.details ? '_redacted')
            AND jsonb_typeof(NEW.details -> '_redacted') = 'string'
            AND (NEW.details - '_redacted') <@ OLD.details THEN
            RETURN NEW;  -- a GDPR redaction: copies of the erased row removed, nothing else
        END IF;
        RAISE EXCEPTION 'The audit log is append-only: entry % is completed and cannot be changed.', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.id IS DISTINCT FROM OLD.id
        OR NEW.action IS DISTINCT FROM OLD.action
        OR NEW.requester IS DISTINCT FROM OLD.requester
        OR NEW.reason IS DISTINCT FROM OLD.reason
        OR NEW.keyspace IS DISTINCT FROM OLD.keyspace
        OR NEW."table" IS DISTINCT FROM OLD."table"
        OR NEW.primary_key IS DISTINCT FROM OLD.primary_key
        OR NEW.requested_at IS DISTINCT FROM OLD.requested_at THEN
        RAISE EXCEPTION 'The audit log is append-only: only the outcome of pending entry % may be recorded.', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS _cdc_audit_log_guard ON _cdc_audit_log;
CREATE TRIGGER _cdc_audit_log_guard
    BEFORE UPDATE OR DELETE ON _cdc_audit_log
    FOR EACH ROW EXECUTE FUNCTION _cdc_audit_log_guard();
"""

UNGUARD = r"""
DROP TRIGGER IF EXISTS _cdc_audit_log_guard ON _cdc_audit_log;
DROP FUNCTION IF EXISTS _cdc_audit_log_guard();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("gdpr", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(GUARD, reverse_sql=UNGUARD),
    ]
