from django.db import migrations


class Migration(migrations.Migration):
    """A patient search leaves one trace, its audit event (counted for the rate limit through the
    audit app's partial index on search events by actor): the search table goes."""

    dependencies = [
        ("access", "0001_initial"),
        ("audit", "0005_search_actor_index"),
    ]

    operations = [
        migrations.DeleteModel(name="PatientSearch"),
    ]
