"""Keyword search over a patient's documents: titles, metadata and extracted text.

SQLite (embedded default): an FTS5 table ``documents_fts`` (unicode61 tokenizer, diacritics
removed), its rowid being the document id. PostgreSQL: a ``tsvector`` column ``search`` on the
document table with a GIN index, built with the ``esante_fr`` configuration (French stemming
plus ``unaccent``). Both are created by migration ``0002_search``.
"""

import re

from django.db import connection

from .models import Document

_WORD = re.compile(r"\w+", re.UNICODE)


def terms_of(query: str) -> list[str]:
    return _WORD.findall(query)[:10]


def document_index(document: Document, *, metadata: str = "") -> None:
    """Indexes (or re-indexes) one document. Called by the services that write documents."""
    body = " ".join(
        part
        for part in (
            document.type_label,
            document.author_name,
            document.source_system,
            metadata,
            document.text_content,
        )
        if part
    )
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("DELETE FROM documents_fts WHERE rowid = %s", [document.pk])
            cursor.execute(
                "INSERT INTO documents_fts (rowid, title, body) VALUES (%s, %s, %s)",
                [document.pk, document.title, body],
            )
        else:
            cursor.execute(
                "UPDATE documents_document SET search = "
                "setweight(to_tsvector('esante_fr', %s), 'A') || to_tsvector('esante_fr', %s) WHERE id = %s",
                [document.title, body, document.pk],
            )


def matching_ids_sql(query: str) -> tuple[str, list[str]] | None:
    """SQL selecting the ids of documents matching every term (prefix match), or None when the
    query has no term. Used as a sub-select, so filtering and access rules stay in the ORM."""
    terms = terms_of(query)
    if not terms:
        return None
    if connection.vendor == "sqlite":
        match = " AND ".join('"' + term.replace('"', "") + '"*' for term in terms)
        return "SELECT rowid FROM documents_fts WHERE documents_fts MATCH %s", [match]
    tsquery = " & ".join(re.sub(r"[^\w]", "", term) + ":*" for term in terms)
    return "SELECT id FROM documents_document WHERE search @@ to_tsquery('esante_fr', %s)", [tsquery]
