"""Readiness (``/readyz``): may the load balancer send this app server requests?

Ready when the database answers, every migration is applied, and the audit trail can be signed:
the signing key (when it exists) loads, the heads file (when it exists) reads and can be appended
to, and where either is still to be created its directory can be written. Each check returns
"" when it passes, else a short reason in English for the operator; the reasons never carry a
path, a secret or a patient datum (the details go to the log).

The hot standby is no condition of readiness: without it every read goes to the primary. When one
is configured, ``replica_report`` says what this process last saw of it (never a new check: a
standby host that does not answer must not slow the load balancer's probe).
"""

import logging
import os
import threading
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from esante.audit.heads import HeadsFileError, last_head

logger = logging.getLogger("esante.health")

#: Once the migrations are seen applied, they stay applied for this process's code: the plan (which
#: reads every migration module) is computed again only after this many seconds.
MIGRATIONS_RECHECK_SECONDS = 60.0

_migrations_ok_at: float | None = None
_migrations_lock = threading.Lock()


def database_problem() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        logger.exception("readiness: the database does not answer")
        return "the database does not answer"
    return ""


def migrations_problem() -> str:
    global _migrations_ok_at
    with _migrations_lock:
        if (
            _migrations_ok_at is not None
            and time.monotonic() - _migrations_ok_at < MIGRATIONS_RECHECK_SECONDS
        ):
            return ""
        try:
            executor = MigrationExecutor(connection)
            plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        except Exception:
            logger.exception("readiness: the migrations could not be read")
            return "the migration state could not be read"
        if plan:
            return f"{len(plan)} migration(s) not applied (esante migrate)"
        _migrations_ok_at = time.monotonic()
        return ""


def forget_migrations_check() -> None:
    """Drops the remembered "migrations applied" (a test that changes them)."""
    global _migrations_ok_at
    _migrations_ok_at = None


def _writable_or_creatable(path: Path) -> bool:
    """True when ``path`` can be appended to, or, missing, created (its nearest existing parent
    directory can be written)."""
    if path.exists():
        return os.access(path, os.W_OK)
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)


def audit_problem() -> str:
    key_path: Path = settings.AUDIT_SIGNING_KEY_FILE
    if key_path.exists():
        try:
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError):
            logger.exception("readiness: the audit signing key %s does not load", key_path)
            return "the audit signing key does not load"
        if not isinstance(key, Ed25519PrivateKey):
            return "the audit signing key is not an Ed25519 key"
    elif not _writable_or_creatable(key_path):
        logger.error("readiness: the audit signing key %s is missing and cannot be created", key_path)
        return "the audit signing key is missing and cannot be created"
    heads_path: Path = settings.AUDIT_HEADS_FILE
    if heads_path.exists():
        try:
            last_head(heads_path)
        except (OSError, HeadsFileError):
            logger.exception("readiness: the audit heads file %s is unreadable", heads_path)
            return "the audit heads file is unreadable"
    if not _writable_or_creatable(heads_path):
        logger.error("readiness: the audit heads file %s cannot be written", heads_path)
        return "the audit heads file cannot be written"
    return ""


def readiness() -> dict[str, str]:
    """Each check's name and its problem ("" when it passes); the later checks are skipped
    ("skipped") when the database does not answer."""
    checks = {"database": database_problem()}
    if checks["database"]:
        return checks | {"migrations": "skipped", "audit": audit_problem()}
    return checks | {"migrations": migrations_problem(), "audit": audit_problem()}


def replica_report() -> dict[str, object]:
    """This process's last view of the standby: ``state`` (``in use``, ``not checked yet``, or
    why reads go to the primary: ``down``, ``lag``, ``not_standby``, ``error``), the lag and the
    age of that view in seconds."""
    from .replica import monitor

    status = monitor.cached()
    if status is None:
        return {"state": "not checked yet"}
    report: dict[str, object] = {
        "state": "in use" if status.usable else status.reason,
        "checked_seconds_ago": round(time.monotonic() - status.checked_at, 1),
    }
    if status.lag_seconds is not None:
        report["lag_seconds"] = round(status.lag_seconds, 3)
    if not status.usable:
        report["reads"] = "primary"
    return report
