"""Plain-row SQL for the patient import: lookups joined against a temporary table, inserts with
``COPY`` (PostgreSQL) or ``executemany`` (SQLite), updates with ``executemany``.

No model instance is built per row: the import handles tuples, and the values are converted to
their database form here, once per batch for the constant ones.
"""

import datetime
import json
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import connection

TABLE = "patients_patient"
# A session-local scratch table: the keys of one lookup, joined against the patient table so
# a batch of any size costs one indexed join (no IN list, no parameter cap).
KEYS_TABLE = "esante_import_keys"

# Columns the import writes on creation, in this order (the rest keep their defaults: no
# referring doctor, no alerts).
INSERT_COLUMNS = (
    "public_id",
    "matricule",
    "birth_name",
    "usage_name",
    "first_names",
    "birth_date",
    "sex",
    "taux",
    "dossier_number",
    "platform_identifier",
    "dossier_state",
    "alerts",
    "birth_name_folded",
    "usage_name_folded",
    "first_names_folded",
    "created_at",
    "updated_at",
)


def _postgresql() -> bool:
    return connection.vendor == "postgresql"


# SQLite's page cache for an importing connection (16 MiB, against the 2 MiB default): the
# patient table's six indexes take keys in random order, and a cache that holds their upper
# pages saves re-reading them at each row. A fixed bound, so memory stays constant in the file
# size: full once the database passes it (some 45,000 patients), the same at any size after
# that (64 MiB cost some 50 MiB more memory at a million rows for no measurable gain).
SQLITE_IMPORT_CACHE_KIB = 16_384


def _sqlite_import_cache(cursor: Any) -> None:
    if not _postgresql():
        cursor.execute(f"PRAGMA cache_size = -{SQLITE_IMPORT_CACHE_KIB}")


def load_keys(values: Iterable[str]) -> None:
    """Puts ``values`` (the keys of one lookup, replacing the previous ones) in the scratch table."""
    with connection.cursor() as cursor:
        _sqlite_import_cache(cursor)
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {KEYS_TABLE} (value varchar(20) NOT NULL)")
        if _postgresql():
            cursor.execute(f"TRUNCATE {KEYS_TABLE}")
            with cursor.copy(f"COPY {KEYS_TABLE} (value) FROM STDIN") as copy:
                for value in values:
                    copy.write_row((value,))
        else:
            cursor.execute(f"DELETE FROM {KEYS_TABLE}")  # noqa: S608 - fixed names
            # One statement for the batch: SQLite unpacks a JSON array itself (json_each), some
            # four times faster than a parameter tuple per key. The keys are strings, so they
            # stay text.
            cursor.execute(
                f"INSERT INTO {KEYS_TABLE} (value) SELECT value FROM json_each(%s)",  # noqa: S608 - fixed names
                [json.dumps([str(value) for value in values])],
            )


def joined(key: str, columns: Sequence[str]) -> list[tuple[Any, ...]]:
    """The ``columns`` of the patients whose column ``key`` is one of the loaded keys.

    ``key`` and ``columns`` are names from this module's callers, never input.
    """
    selected = ", ".join(f"p.{column}" for column in columns)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {selected} FROM {KEYS_TABLE} k JOIN {TABLE} p ON p.{key} = k.value")  # noqa: S608 - fixed names
        return list(cursor.fetchall())


def rows_by_key(key: str, values: Iterable[str], columns: Sequence[str]) -> list[tuple[Any, ...]]:
    """``load_keys(values)`` then ``joined(key, columns)``."""
    load_keys(values)
    return joined(key, columns)


def db_date_form() -> Callable[[datetime.date], Any]:
    """For the current database, a function converting a date to the form Django stores it
    (native on PostgreSQL, ISO text on SQLite); looked up once per batch, not per row."""
    return (lambda value: value) if _postgresql() else datetime.date.isoformat


def new_public_ids(count: int) -> list[str]:
    """``count`` random (version 4) UUIDs as 32 hex digits: Django's SQLite form, and text
    PostgreSQL's ``COPY`` reads into a ``uuid`` column. Drawn in one system call."""
    raw = bytearray(os.urandom(16 * count))
    raw[6::16] = bytes(byte & 0x0F | 0x40 for byte in raw[6::16])  # version 4
    raw[8::16] = bytes(byte & 0x3F | 0x80 for byte in raw[8::16])  # RFC 4122 variant
    text = raw.hex()
    return [text[start : start + 32] for start in range(0, 32 * count, 32)]


def db_datetime(value: datetime.datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def insert_rows(rows: Sequence[Sequence[Any]]) -> None:
    """Inserts patients given as sequences (tuples, lists) of ``INSERT_COLUMNS`` values in
    database form."""
    if not rows:
        return
    columns = ", ".join(INSERT_COLUMNS)
    with connection.cursor() as cursor:
        _sqlite_import_cache(cursor)
        if _postgresql():
            with cursor.copy(f"COPY {TABLE} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            placeholders = ", ".join(["%s"] * len(INSERT_COLUMNS))
            cursor.executemany(f"INSERT INTO {TABLE} ({columns}) VALUES ({placeholders})", rows)  # noqa: S608 - fixed names


UPDATES_TABLE = "esante_import_updates"


def update_rows(columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """Sets ``columns`` of existing patients; each row holds their values then the patient's id.

    PostgreSQL: the rows are copied into a temporary table of the same column types, then one
    ``UPDATE ... FROM`` joins it; SQLite: one ``executemany``.
    """
    if not rows:
        return
    with connection.cursor() as cursor:
        if _postgresql():
            listed = ", ".join([*columns, "id"])
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {UPDATES_TABLE} AS "  # noqa: S608 - fixed names
                f"SELECT {listed} FROM {TABLE} WITH NO DATA"
            )
            cursor.execute(f"TRUNCATE {UPDATES_TABLE}")
            with cursor.copy(f"COPY {UPDATES_TABLE} ({listed}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            assignments = ", ".join(f"{column} = u.{column}" for column in columns)
            cursor.execute(
                f"UPDATE {TABLE} p SET {assignments} FROM {UPDATES_TABLE} u WHERE p.id = u.id"  # noqa: S608 - fixed names
            )
        else:
            assignments = ", ".join(f"{column} = %s" for column in columns)
            cursor.executemany(f"UPDATE {TABLE} SET {assignments} WHERE id = %s", rows)  # noqa: S608 - fixed names
