"""Database triggers that make the audit table append-only, on SQLite and PostgreSQL.

DELETE and TRUNCATE are refused; UPDATE too, but for the chainer's one transition (batched
chaining): an unchained row (sequence NULL) receives its chain columns, its content unchanged.

Installed by migration ``0002``. The test suite's cleanup of transactional tests removes them,
empties the table and installs them again (``tests/conftest.py``); nothing else may.
"""

from django.db.backends.base.base import BaseDatabaseWrapper

TABLE = "audit_auditevent"
MESSAGE = "audit trail is append-only"

# The one change allowed (batched chaining, ``esante.audit.chaining``): an unchained event
# (sequence NULL) gets its chain columns once; every other column stays as it was written.
CHAIN_COLUMNS = ("sequence", "prev_hash", "hash", "canonical", "mac")
CONTENT_COLUMNS = (
    "id",
    "created_at",
    "actor_id",
    "actor_label",
    "action",
    "outcome",
    "patient_id",
    "object_type",
    "object_id",
    "motif",
    "client_address",
    "details",
)


def _chaining(same: str) -> str:
    """The SQL condition of the allowed UPDATE; ``same`` is the null-safe equality operator."""
    unchanged = " AND ".join(f"NEW.{column} {same} OLD.{column}" for column in CONTENT_COLUMNS)
    return f"OLD.sequence IS NULL AND NEW.sequence IS NOT NULL AND {unchanged}"


_SQLITE_INSTALL = [
    f"CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON {TABLE} "
    f"WHEN NOT ({_chaining('IS')}) BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
    f"CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON {TABLE} "
    f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
]
_SQLITE_REMOVE = ["DROP TRIGGER IF EXISTS audit_no_update", "DROP TRIGGER IF EXISTS audit_no_delete"]

_PG_INSTALL = [
    "CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
    f"BEGIN RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege'; END $$",
    "CREATE OR REPLACE FUNCTION audit_allow_chaining() RETURNS trigger LANGUAGE plpgsql AS $$ "
    f"BEGIN IF {_chaining('IS NOT DISTINCT FROM')} THEN RETURN NEW; END IF; "
    f"RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege'; END $$",
    f"DROP TRIGGER IF EXISTS audit_no_change ON {TABLE}",
    f"CREATE TRIGGER audit_no_change BEFORE DELETE ON {TABLE} "
    "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()",
    f"DROP TRIGGER IF EXISTS audit_no_update ON {TABLE}",
    f"CREATE TRIGGER audit_no_update BEFORE UPDATE ON {TABLE} "
    "FOR EACH ROW EXECUTE FUNCTION audit_allow_chaining()",
    f"DROP TRIGGER IF EXISTS audit_no_truncate ON {TABLE}",
    f"CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON {TABLE} "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()",
]
_PG_REMOVE = [
    f"DROP TRIGGER IF EXISTS audit_no_change ON {TABLE}",
    f"DROP TRIGGER IF EXISTS audit_no_update ON {TABLE}",
    f"DROP TRIGGER IF EXISTS audit_no_truncate ON {TABLE}",
]


def _run(connection: BaseDatabaseWrapper, statements: list[str]) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def install(connection: BaseDatabaseWrapper) -> None:
    if connection.vendor == "sqlite":
        _run(connection, _SQLITE_INSTALL)
    elif connection.vendor == "postgresql":
        _run(connection, _PG_INSTALL)
    else:
        raise NotImplementedError(f"no append-only triggers for {connection.vendor}")


def remove(connection: BaseDatabaseWrapper) -> None:
    if connection.vendor == "sqlite":
        _run(connection, _SQLITE_REMOVE)
    elif connection.vendor == "postgresql":
        _run(connection, _PG_REMOVE)
