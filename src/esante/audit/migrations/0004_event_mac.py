from django.db import migrations, models


class Migration(migrations.Migration):
    """A nullable column: added without rewriting the table (the append-only triggers stay, no
    row is updated). Events written before it keep a NULL MAC ("legacy, unkeyed")."""

    dependencies = [
        ("audit", "0003_event_ordering"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="mac",
            field=models.CharField(blank=True, editable=False, max_length=64, null=True),
        ),
    ]
