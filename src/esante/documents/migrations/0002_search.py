from django.db import migrations

SQLITE = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS documents_fts USING fts5(title, body, tokenize='unicode61 remove_diacritics 2')",
]
POSTGRESQL = [
    "CREATE EXTENSION IF NOT EXISTS unaccent",
    "DO $$ BEGIN "
    "IF NOT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = 'esante_fr') THEN "
    "CREATE TEXT SEARCH CONFIGURATION esante_fr (COPY = french); "
    "ALTER TEXT SEARCH CONFIGURATION esante_fr ALTER MAPPING FOR hword, hword_part, word "
    "WITH unaccent, french_stem; "
    "END IF; END $$",
    "ALTER TABLE documents_document ADD COLUMN IF NOT EXISTS search tsvector",
    "CREATE INDEX IF NOT EXISTS document_search_idx ON documents_document USING gin (search)",
]


def create(apps, schema_editor):
    statements = SQLITE if schema_editor.connection.vendor == "sqlite" else POSTGRESQL
    for statement in statements:
        schema_editor.execute(statement)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute("DROP TABLE IF EXISTS documents_fts")
    else:
        schema_editor.execute("ALTER TABLE documents_document DROP COLUMN IF EXISTS search")


class Migration(migrations.Migration):
    dependencies = [("documents", "0001_initial")]
    operations = [migrations.RunPython(create, drop)]
