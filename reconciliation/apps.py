from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ReconciliationConfig(AppConfig):
    name = "reconciliation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from reconciliation import arrivals, metrics
        from reconciliation.signals import sync_schedule_after_migrate

        # Sent once per app after `migrate` (and `flush`); sender=self runs it once.
        post_migrate.connect(
            sync_schedule_after_migrate,
            sender=self,
            dispatch_uid="reconciliation.sync_schedule_after_migrate",
        )
        # The scrape-time collector behind /metrics (registered once per registry).
        metrics.register()
        arrivals.register()  # cdc_reconciliation_arrival_seconds, beside it
