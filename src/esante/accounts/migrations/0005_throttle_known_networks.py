from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_throttle_pairs"),
    ]

    operations = [
        migrations.AddField(
            model_name="loginthrottle",
            name="succeeded_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
