from django.db import migrations

from esante.audit import triggers


def install(apps, schema_editor):
    apps.get_model("audit", "AuditChainHead").objects.get_or_create(pk=1, defaults={"sequence": 0, "hash": "0" * 64})
    triggers.install(schema_editor.connection)


def remove(apps, schema_editor):
    triggers.remove(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]
    operations = [migrations.RunPython(install, remove)]
