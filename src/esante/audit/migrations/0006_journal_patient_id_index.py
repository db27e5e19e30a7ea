from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    """A patient's journal read newest first by id (an event's sequence may be set after it is
    written): SQLite's index on the foreign key already ends with the rowid, PostgreSQL's does not."""

    dependencies = [
        ('audit', '0005_search_actor_index'),
        ('patients', '0002_c_collation'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name='auditevent',
            index=models.Index(fields=['patient', 'id'], name='audit_patient_id_idx'),
        ),
    ]
