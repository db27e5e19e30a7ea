"""The leader lock: of several ``esante serve`` on one database, one runs the background loops.

The audit signer (``esante.audit.anchoring``) and the public log's sequencer
(``esante.tlog.sequencer``) should run once per platform, not once per app server: each is safe
when two run at once (the signer holds the heads file's lock, a sequencer batch holds the log's
state row), but two would queue on those locks at every round for nothing. So an ``esante serve``
runs them only while it holds the leader lock, and another takes over when the leader dies.

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a connection of its own,
  opened for the lock and nothing else (never one of Django's, which are closed and reopened
  between requests). PostgreSQL releases it when that session ends: the process died, its host
  went away (TCP keepalives on the connection bound how long that takes to notice), or an
  operator terminated the backend. The leader checks its session at every round; a lost
  connection is lost leadership, and the loops stop before another instance can have started
  its own for long. Advisory locks are per database: two platforms on one server do not
  compete. The session must reach PostgreSQL itself (or a pooler in session mode): a pooler in
  transaction mode would hand the lock to whichever client next borrows that server connection.
- SQLite (one host): ``fcntl.flock`` on a file next to the database file, held by an open file
  descriptor: the kernel releases it when the process dies, however it dies.

``LEADER_SECONDS`` (``ESANTE_LEADER_SECONDS``) is how often a follower tries to take the lock and
a leader checks it still holds it: it bounds how long the platform runs without a signer and a
sequencer after a leader dies (plus the keepalive delay on PostgreSQL when a host vanishes).
"""

import contextlib
import fcntl
import hashlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

logger = logging.getLogger("esante.leader")

#: The lock's name; its advisory lock key is derived from it (PostgreSQL).
LOCK_NAME = "esante:background"


def advisory_key(name: str = LOCK_NAME) -> int:
    """A signed 64-bit key for ``pg_try_advisory_lock``, the same in every process and release."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def instance_name() -> str:
    """How the log names this instance: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


class LeaderLock(Protocol):
    def try_acquire(self) -> bool:
        """Takes the lock if nobody holds it; True when this instance now holds it."""

    def still_held(self) -> bool:
        """While holding it: True when the lock is still this instance's."""

    def release(self) -> None:
        """Gives the lock up (nothing when it is not held)."""


class PostgresLeaderLock:
    """A session-level advisory lock on a dedicated connection (see the module docstring)."""

    #: The lock connection's TCP settings: keepalives, so that a vanished leader host is noticed
    #: by PostgreSQL (which then frees the lock) within about idle + interval x count seconds, and
    #: by the leader (its check fails instead of hanging on a black-holed network); a user timeout
    #: (milliseconds) for a check whose bytes go unacknowledged; a bounded connection attempt.
    TCP = {
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": 30_000,
        "connect_timeout": 10,
    }

    def __init__(self, alias: str = DEFAULT_DB_ALIAS, name: str = LOCK_NAME) -> None:
        self.alias = alias
        self.key = advisory_key(name)
        self._connection: Any = None
        self._unreachable = False  # PostgreSQL did not answer the last try (logged once)

    def _connect(self) -> Any:
        wrapper = connections.create_connection(self.alias)
        params = wrapper.get_connection_params()
        for option, value in self.TCP.items():
            params.setdefault(option, value)
        params["application_name"] = f"esante leader lock {instance_name()}"[:63]
        raw = wrapper.get_new_connection(params)
        raw.autocommit = True  # the lock is the session's, outside any transaction
        # gunicorn forks its workers from the process holding this connection: psycopg closes a
        # connection only in the process that opened it, so a worker's exit never ends the session.
        return raw

    def try_acquire(self) -> bool:
        if self._connection is not None:
            return self.still_held()
        try:
            self._connection = self._connect()
            row = self._connection.execute("SELECT pg_try_advisory_lock(%s)", [self.key]).fetchone()
        except Exception as exc:
            if not self._unreachable:  # once per outage, not at every try
                logger.error("leader lock: PostgreSQL could not be asked for the lock: %s", exc)
            self._unreachable = True
            self._close()
            return False
        self._unreachable = False
        if not (row and row[0]):
            self._close()  # somebody else leads: no idle session held meanwhile
            return False
        return True

    def still_held(self) -> bool:
        if self._connection is None:
            return False
        try:
            # The lock lives as long as this session: a query that answers proves both.
            row = self._connection.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
                "AND granted AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = %s",
                [self.key],
            ).fetchone()
        except Exception:
            logger.exception("leader lock: the lock's PostgreSQL session was lost")
            self._close()
            return False
        if not (row and row[0]):
            self._close()
            return False
        return True

    def release(self) -> None:
        if self._connection is None:
            return
        with contextlib.suppress(Exception):
            self._connection.execute("SELECT pg_advisory_unlock(%s)", [self.key])
        self._close()

    def _close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
        self._connection = None


class FileLeaderLock:
    """An exclusive ``flock`` on a file (SQLite: next to the database file, see ``leader_lock``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def still_held(self) -> bool:
        return self._fd is not None  # a flock lasts as long as its descriptor

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def leader_lock(alias: str = DEFAULT_DB_ALIAS) -> LeaderLock:
    """The lock for the database of ``alias``: an advisory lock on PostgreSQL, else a file lock
    next to the SQLite database (so two instances with different data directories on one database
    still elect one leader), or in the data directory for an in-memory database."""
    database = settings.DATABASES[alias]
    if database["ENGINE"] == "django.db.backends.postgresql":
        return PostgresLeaderLock(alias)
    name = str(database.get("NAME") or "")
    if name and name != ":memory:" and not name.startswith("file:"):
        path = Path(name).resolve()
        return FileLeaderLock(path.with_name(path.name + ".leader.lock"))
    return FileLeaderLock(Path(settings.DATA_DIR) / "leader.lock")


def _set_gauge(value: int) -> None:
    from .metrics import LEADER

    LEADER.set(value)


@contextlib.contextmanager
def _term(start: Callable[[threading.Event], list[threading.Thread]]) -> Iterator[threading.Event]:
    """One term of leadership: the loops started by ``start``, stopped and joined at its end."""
    term_stop = threading.Event()
    threads = start(term_stop)
    try:
        yield term_stop
    finally:
        term_stop.set()
        for thread in threads:
            thread.join(timeout=60)
            if thread.is_alive():
                logger.error("leader: the %s loop did not stop within 60 s", thread.name)


def lead_while_held(
    stop: threading.Event,
    lock: LeaderLock,
    *,
    start: Callable[[threading.Event], list[threading.Thread]],
    on_last_term_end: Callable[[], None] | None = None,
    interval: float | None = None,
) -> None:
    """Until ``stop`` is set: tries the lock every ``interval`` seconds (default
    ``LEADER_SECONDS``); while it holds it, runs the loops that ``start(term_stop)`` starts, and
    stops them (``term_stop`` set, threads joined) as soon as the lock is lost. Logs each gain
    and loss and keeps the ``esante_leader`` gauge at 1 while leading, else 0.

    ``on_last_term_end`` runs once ``stop`` is set, while the lock is still held, when this
    instance was leading (``esante serve``'s last signature and sequencing before it exits)."""
    interval = settings.LEADER_SECONDS if interval is None else interval
    name = instance_name()
    _set_gauge(0)
    try:
        while not stop.is_set():
            if not lock.try_acquire():
                stop.wait(interval)
                continue
            logger.warning("leader: %s now leads (audit signer and public log sequencer run here)", name)
            _set_gauge(1)
            lost = False
            with _term(start):
                while not stop.wait(interval):
                    if not lock.still_held():
                        lost = True
                        break
            if lost:
                _set_gauge(0)
                logger.error("leader: %s lost the leader lock; its loops stopped", name)
                continue
            if on_last_term_end is not None:
                try:
                    on_last_term_end()
                except Exception:
                    logger.exception("leader: the last round before stopping failed")
            break
    finally:
        if lock.still_held():
            lock.release()
            logger.warning("leader: %s stepped down", name)
        _set_gauge(0)
