from django.apps import AppConfig


class GdprConfig(AppConfig):
    name = "gdpr"
    verbose_name = "GDPR"
    default_auto_field = "django.db.models.BigAutoField"
