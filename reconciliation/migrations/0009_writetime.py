from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("reconciliation", "0008_lag_budget_and_repair_policy"),
    ]

    operations = [
        migrations.AddField(
            model_name="segmentdifference",
            name="source_write_time",
            field=models.BigIntegerField(null=True),
        ),
        migrations.AddField(
            model_name="segmentdifference",
            name="source_expires_at",
            field=models.FloatField(null=True),
        ),
        migrations.AddIndex(
            model_name="mismatch",
            index=models.Index(
                condition=models.Q(("resolution_status", "IN_FLIGHT")),
                fields=["recheck_after"],
                name="mismatch_in_flight_due",
            ),
        ),
    ]
