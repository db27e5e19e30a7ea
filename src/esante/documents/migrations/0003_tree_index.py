"""The covering index of the "Vue documentaire" tree and filter choices; it starts with the columns
of ``document_patient_tree_idx``'s predecessor (patient, class, type), which it replaces.

On PostgreSQL both are built and dropped ``CONCURRENTLY`` (the migration is not atomic): a large
documents table keeps taking submissions while the index is built.
"""

from django.db import migrations, models


def _concurrently(schema_editor) -> dict[str, bool]:
    return {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}


class AddIndexOnline(migrations.AddIndex):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.add_index(model, self.index, **_concurrently(schema_editor))

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.remove_index(model, self.index, **_concurrently(schema_editor))


class RemoveIndexOnline(migrations.RemoveIndex):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            index = from_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
            schema_editor.remove_index(model, index, **_concurrently(schema_editor))

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            index = to_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
            schema_editor.add_index(model, index, **_concurrently(schema_editor))


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("accounts", "0005_throttle_known_networks"),
        ("documents", "0002_search"),
        ("patients", "0002_c_collation"),
    ]

    operations = [
        AddIndexOnline(
            model_name="document",
            index=models.Index(
                fields=[
                    "patient",
                    "class_code",
                    "type_code",
                    "-clinical_at",
                    "-id",
                    "confidentiality",
                    "hidden_by_patient",
                    "author",
                    "status",
                    "binder",
                    "author_name",
                ],
                name="document_patient_tree_idx",
            ),
        ),
        RemoveIndexOnline(model_name="document", name="document_patient_type_idx"),
    ]
