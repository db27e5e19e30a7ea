"""The per-patient document summary of the "Vue documentaire" counts and filter choices, its
triggers on ``documents_document`` (``esante.documents.summary``), and its rows for the documents
already stored (filled after the triggers are created: on PostgreSQL creating them locks writers
out until this migration commits, so no document is missed or counted twice)."""

import django.db.models.deletion
import django.db.models.functions.comparison
from django.db import migrations, models


def create(apps, schema_editor):
    from esante.documents import summary

    summary.install(schema_editor.connection)
    summary.backfill(schema_editor.connection)


def drop(apps, schema_editor):
    from esante.documents import summary

    summary.remove(schema_editor.connection)


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0005_throttle_known_networks'),
        ('documents', '0003_tree_index'),
        ('patients', '0002_c_collation'),
    ]

    operations = [
        migrations.CreateModel(
            name='DocumentSummary',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('class_code', models.CharField(max_length=32)),
                ('type_code', models.CharField(max_length=16)),
                ('confidentiality', models.CharField(max_length=1)),
                ('hidden_by_patient', models.BooleanField()),
                ('status', models.CharField(max_length=20)),
                ('binder', models.CharField(max_length=32)),
                ('author_name', models.CharField(max_length=200)),
                ('document_count', models.PositiveIntegerField()),
                ('author', models.ForeignKey(db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='accounts.professional')),
                ('patient', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='patients.patient')),
            ],
            options={
                'verbose_name': 'résumé des documents',
                'constraints': [models.UniqueConstraint(models.F('patient'), models.F('class_code'), models.F('type_code'), models.F('confidentiality'), models.F('hidden_by_patient'), django.db.models.functions.comparison.Coalesce('author', 0), models.F('status'), models.F('binder'), models.F('author_name'), name='document_summary_key')],
            },
        ),
        migrations.RunPython(create, drop),
    ]
