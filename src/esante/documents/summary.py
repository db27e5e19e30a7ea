"""The per-patient document summary (``DocumentSummary``): kept by database triggers, checked and
repaired by ``esante check_document_summary``.

Why triggers: the summary is a function of ``documents_document`` alone, and every write to that
table — ``document_submit``, the patient's hide/show, a status change, ``bulk_create``, the
national loader's ``COPY`` / ``executemany``, a raw ``UPDATE`` — fires them in the statement that
writes the document, inside its transaction. No write path can forget the summary, and a rolled
back document rolls its count back. It can drift only if someone writes the summary table
directly or drops the triggers; ``summary_differences`` finds that and ``summary_repair``
rebuilds the patients concerned.

* SQLite: row triggers. Insert: an upsert adding 1 to the row of the new document's key.
  Update of a key column (``WHEN`` a key column changed: other updates cost nothing) and delete:
  1 taken from the old key's row (the row removed at 0), 1 added to the new key's.
* PostgreSQL: inserts by a statement trigger over the inserted rows (a ``COPY`` of a million
  documents makes one grouped upsert, not a million), updates and deletes by row triggers as on
  SQLite. The grouped upsert takes the rows in key order, and a row update takes its two rows in
  key order, so two transactions never wait for each other's summary rows in a cycle.

A document without author counts under author 0 (``COALESCE``): no professional has id 0, and the
unique index ``document_summary_key`` is then a valid upsert target on both databases.
"""

# ruff: noqa: S608 - every statement here is built from this module's constants (table and column
# names); values are parameters.
from django.db import connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from .models import SUMMARY_KEY

DOCUMENTS = "documents_document"
SUMMARY = "documents_documentsummary"
_KEY = ", ".join(SUMMARY_KEY)
# The unique index's columns, as the upsert names them (the author as the index's expression).
_TARGET = ", ".join("(COALESCE(author_id, 0))" if c == "author_id" else c for c in SUMMARY_KEY)
_SQLITE_TARGET = ", ".join("COALESCE(author_id, 0)" if c == "author_id" else c for c in SUMMARY_KEY)


def _same_key(row: str, same: str) -> str:
    """The summary row of ``row``'s key (``row`` is OLD or NEW; ``same`` the null-safe equality)."""
    return " AND ".join(f"{c} {same} {row}.{c}" for c in SUMMARY_KEY)


def _changed(same: str) -> str:
    return " OR ".join(f"NOT (OLD.{c} {same} NEW.{c})" for c in SUMMARY_KEY)


def _sqlite_add(row: str) -> str:
    values = ", ".join(f"{row}.{c}" for c in SUMMARY_KEY)
    return (
        f"INSERT INTO {SUMMARY} ({_KEY}, document_count) VALUES ({values}, 1) "
        f"ON CONFLICT ({_SQLITE_TARGET}) DO UPDATE SET document_count = document_count + 1;"
    )


def _sqlite_take(row: str) -> str:
    return (
        f"UPDATE {SUMMARY} SET document_count = document_count - 1 WHERE {_same_key(row, 'IS')}; "
        f"DELETE FROM {SUMMARY} WHERE {_same_key(row, 'IS')} AND document_count = 0;"
    )


_SQLITE_INSTALL = [
    f"CREATE TRIGGER IF NOT EXISTS document_summary_insert AFTER INSERT ON {DOCUMENTS} "
    f"BEGIN {_sqlite_add('NEW')} END",
    f"CREATE TRIGGER IF NOT EXISTS document_summary_update AFTER UPDATE OF {_KEY} ON {DOCUMENTS} "
    f"WHEN {_changed('IS')} BEGIN {_sqlite_take('OLD')} {_sqlite_add('NEW')} END",
    f"CREATE TRIGGER IF NOT EXISTS document_summary_delete AFTER DELETE ON {DOCUMENTS} "
    f"BEGIN {_sqlite_take('OLD')} END",
]
_SQLITE_REMOVE = [
    "DROP TRIGGER IF EXISTS document_summary_insert",
    "DROP TRIGGER IF EXISTS document_summary_update",
    "DROP TRIGGER IF EXISTS document_summary_delete",
]

_PG_UPSERT = (
    f"ON CONFLICT ({_TARGET}) DO UPDATE "
    f"SET document_count = {SUMMARY}.document_count + EXCLUDED.document_count"
)


def _pg_add(row: str) -> str:
    values = ", ".join(f"{row}.{c}" for c in SUMMARY_KEY)
    return f"INSERT INTO {SUMMARY} ({_KEY}, document_count) VALUES ({values}, 1) {_PG_UPSERT};"


def _pg_take(row: str) -> str:
    same = _same_key(row, "IS NOT DISTINCT FROM")
    return (
        f"UPDATE {SUMMARY} SET document_count = document_count - 1 WHERE {same}; "
        f"DELETE FROM {SUMMARY} WHERE {same} AND document_count = 0;"
    )


def _pg_key(row: str) -> str:
    columns = (f"COALESCE({row}.author_id, 0)" if c == "author_id" else f"{row}.{c}" for c in SUMMARY_KEY)
    return f"ROW({', '.join(columns)})"


_PG_INSTALL = [
    "CREATE OR REPLACE FUNCTION document_summary_inserted() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    f"INSERT INTO {SUMMARY} ({_KEY}, document_count) "
    f"SELECT {_KEY}, count(*) FROM inserted GROUP BY {_KEY} ORDER BY {_KEY} {_PG_UPSERT}; "
    "RETURN NULL; END $$",
    # The two rows in key order (no wait cycle between two updates moving documents both ways).
    "CREATE OR REPLACE FUNCTION document_summary_updated() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    f"IF {_pg_key('OLD')} < {_pg_key('NEW')} THEN {_pg_take('OLD')} {_pg_add('NEW')} "
    f"ELSE {_pg_add('NEW')} {_pg_take('OLD')} END IF; "
    "RETURN NULL; END $$",
    "CREATE OR REPLACE FUNCTION document_summary_deleted() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    f"{_pg_take('OLD')} RETURN NULL; END $$",
    f"DROP TRIGGER IF EXISTS document_summary_insert ON {DOCUMENTS}",
    f"CREATE TRIGGER document_summary_insert AFTER INSERT ON {DOCUMENTS} REFERENCING NEW TABLE AS inserted "
    "FOR EACH STATEMENT EXECUTE FUNCTION document_summary_inserted()",
    f"DROP TRIGGER IF EXISTS document_summary_update ON {DOCUMENTS}",
    f"CREATE TRIGGER document_summary_update AFTER UPDATE OF {_KEY} ON {DOCUMENTS} "
    f"FOR EACH ROW WHEN ({_changed('IS NOT DISTINCT FROM')}) EXECUTE FUNCTION document_summary_updated()",
    f"DROP TRIGGER IF EXISTS document_summary_delete ON {DOCUMENTS}",
    f"CREATE TRIGGER document_summary_delete AFTER DELETE ON {DOCUMENTS} "
    "FOR EACH ROW EXECUTE FUNCTION document_summary_deleted()",
]
_PG_REMOVE = [
    f"DROP TRIGGER IF EXISTS document_summary_insert ON {DOCUMENTS}",
    f"DROP TRIGGER IF EXISTS document_summary_update ON {DOCUMENTS}",
    f"DROP TRIGGER IF EXISTS document_summary_delete ON {DOCUMENTS}",
    "DROP FUNCTION IF EXISTS document_summary_inserted()",
    "DROP FUNCTION IF EXISTS document_summary_updated()",
    "DROP FUNCTION IF EXISTS document_summary_deleted()",
]


def _run(conn: BaseDatabaseWrapper, statements: list[str]) -> None:
    with conn.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def install(conn: BaseDatabaseWrapper) -> None:
    """Creates the triggers (idempotent)."""
    if conn.vendor == "sqlite":
        _run(conn, _SQLITE_INSTALL)
    elif conn.vendor == "postgresql":
        _run(conn, _PG_INSTALL)
    else:
        raise NotImplementedError(f"no document summary triggers for {conn.vendor}")


def remove(conn: BaseDatabaseWrapper) -> None:
    _run(conn, _SQLITE_REMOVE if conn.vendor == "sqlite" else _PG_REMOVE)


def _grouped(where: str = "") -> str:
    """The summary as the documents make it, for all patients or those of ``where``."""
    return f"SELECT {_KEY}, count(*) AS document_count FROM {DOCUMENTS} {where} GROUP BY {_KEY}"


def backfill(conn: BaseDatabaseWrapper) -> None:
    """Fills the summary from the documents already stored (the migration that adds it, after the
    triggers: on PostgreSQL creating them locks out writers until the migration commits)."""
    _run(conn, [f"INSERT INTO {SUMMARY} ({_KEY}, document_count) {_grouped()}"])


def summary_differences(*, patient_ids: list[int] | None = None) -> list[int]:
    """The patients whose summary rows are not what their documents make (sorted ids): the rows
    the documents give and the summary lacks, and the other way round."""
    where, params = "", []
    if patient_ids is not None:
        if not patient_ids:
            return []
        where = f"WHERE patient_id IN ({', '.join(['%s'] * len(patient_ids))})"
        params = list(patient_ids)
    stored = f"SELECT {_KEY}, document_count FROM {SUMMARY} {where}"
    expected = _grouped(where)
    sql = (
        f"SELECT DISTINCT patient_id FROM ({expected} EXCEPT {stored}) AS missing "
        f"UNION SELECT DISTINCT patient_id FROM ({stored} EXCEPT {expected}) AS extra ORDER BY 1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params * 4)
        return [row[0] for row in cursor.fetchall()]


@transaction.atomic
def summary_repair(*, patient_ids: list[int]) -> None:
    """Rebuilds the summary rows of these patients from their documents.

    On PostgreSQL the documents table is locked against writes (``SHARE``) for the rebuild, so
    that no document written meanwhile is counted twice or missed; SQLite has one writer anyway.
    """
    if not patient_ids:
        return
    marks = ", ".join(["%s"] * len(patient_ids))
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"LOCK TABLE {DOCUMENTS} IN SHARE MODE")
        cursor.execute(f"DELETE FROM {SUMMARY} WHERE patient_id IN ({marks})", patient_ids)
        cursor.execute(
            f"INSERT INTO {SUMMARY} ({_KEY}, document_count) {_grouped(f'WHERE patient_id IN ({marks})')}",
            patient_ids,
        )
