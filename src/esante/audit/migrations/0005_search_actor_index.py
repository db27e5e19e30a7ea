from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    """A professional's recent successful patient searches, read by the rate limit and the access
    dialog: a partial index, as small as the search events alone."""

    dependencies = [
        ("audit", "0004_event_mac"),
        ("patients", "0002_c_collation"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(
                condition=models.Q(("action", "patient.search"), ("outcome", "success")),
                fields=["actor", "created_at"],
                name="audit_search_actor_idx",
            ),
        ),
    ]
