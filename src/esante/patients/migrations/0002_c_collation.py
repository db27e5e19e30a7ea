from django.db import migrations

COLUMNS = {"birth_name_folded": 100, "usage_name_folded": 100, "first_names_folded": 150}


def c_collation(apps, schema_editor):
    """On PostgreSQL, folded names use the "C" collation: a B-tree range scan then serves both
    the prefix predicate (>= 'DUP' AND < 'DUQ') and the ordering of the page."""
    if schema_editor.connection.vendor != "postgresql":
        return
    for column, length in COLUMNS.items():
        schema_editor.execute(
            f'ALTER TABLE patients_patient ALTER COLUMN {column} TYPE varchar({length}) COLLATE "C"'
        )


class Migration(migrations.Migration):
    dependencies = [("patients", "0001_initial")]
    operations = [migrations.RunPython(c_collation, migrations.RunPython.noop)]
