"""A real PostgreSQL hot standby of the test server, for the replica tests.

``standby`` (once per run) seeds a second PostgreSQL 15 server from the primary the suite runs on
with ``pg_basebackup -R -X stream`` — after the test database is created, so the standby holds it
— and starts it with ``pg_ctl`` on a free port of the loopback, as the ``postgres`` OS user when
the tests run as root (PostgreSQL refuses to run as root); it is stopped and its directory removed
after the run. Streaming replication needs a ``replication`` line in the primary's ``pg_hba.conf``:
when the primary has none for 127.0.0.1, the fixture appends ``host replication all 127.0.0.1/32
trust`` to the file the primary names (``SHOW hba_file``) and reloads it (idempotent; ``.ci/run``
does the same before the tests); it fails, saying so, when it cannot.

``replica`` (per test) points the ``replica`` alias at the standby, turns the routing on, and
works on committed data (``committed_db``: the standby only sees what the primary committed).
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings as django_settings
from django.db import connections

from esante.core.replica import REPLICA, monitor, parse_lsn

BIN = Path("/usr/lib/postgresql/15/bin")
HBA_LINE = "host replication all 127.0.0.1/32 trust"
# The standby must allow at least what the primary allows (hot standby's requirement).
COPIED_SETTINGS = (
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
)


def on_postgresql() -> bool:
    return bool(django_settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Standby:
    """A hot standby of the primary, in a temporary directory, on its own port."""

    def __init__(self, primary: dict[str, Any]) -> None:
        self.primary = primary
        self.port = _free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="esante-standby-"))
        self.as_postgres = os.geteuid() == 0

    # -- running commands -----------------------------------------------------------------------
    def _run(self, *command: str, timeout: float = 120) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_postgres else []
        result = subprocess.run(
            [*prefix, *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.directory,
        )
        if result.returncode != 0:
            log = self.directory / "server.log"
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}\n{tail}")

    def _primary_sql(self, query: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(
            **self._conninfo(self.primary["HOST"], self.primary["PORT"]), autocommit=True
        ) as db:
            cursor = db.execute(query)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    def sql(self, query: str) -> list[tuple[Any, ...]]:
        """A query on the standby, on a connection of its own."""
        with psycopg.connect(**self._conninfo("127.0.0.1", self.port), autocommit=True) as db:
            return db.execute(query).fetchall()  # type: ignore[arg-type]

    def _conninfo(self, host: str, port: Any) -> dict[str, Any]:
        return {
            "host": host or "127.0.0.1",
            "port": int(port or 5432),
            "user": self.primary["USER"] or "postgres",
            "dbname": "postgres",
            "connect_timeout": 5,
        }

    # -- the primary's side ---------------------------------------------------------------------
    def allow_replication(self) -> None:
        """The primary's ``pg_hba.conf`` lets 127.0.0.1 connect for replication (added if not)."""
        (wal_level,), (senders,) = (
            self._primary_sql("SHOW wal_level"),
            self._primary_sql("SHOW max_wal_senders"),
        )
        if wal_level[0] not in ("replica", "logical") or int(senders[0]) < 1:
            pytest.fail(
                f"the primary cannot stream WAL: wal_level={wal_level[0]}, max_wal_senders={senders[0]}"
            )
        rules = self._primary_sql(
            "SELECT count(*) FROM pg_hba_file_rules WHERE type = 'host' AND 'replication' = ANY(database) "
            "AND (address = '127.0.0.1' OR address = 'all' OR address IS NULL) AND auth_method = 'trust'"
        )
        if rules[0][0]:
            return
        hba_file = Path(self._primary_sql("SHOW hba_file")[0][0])
        try:
            with hba_file.open("a", encoding="utf-8") as fh:
                fh.write(
                    f"\n# Streaming replication to the test standby (esante tests/replica)\n{HBA_LINE}\n"
                )
        except OSError as error:
            pytest.fail(
                f"the primary refuses replication connections from 127.0.0.1 and {hba_file} cannot be "
                f"written ({error}): add the line '{HBA_LINE}' to it and reload PostgreSQL"
            )
        self._primary_sql("SELECT pg_reload_conf()")
        time.sleep(0.5)

    # -- the standby's life ---------------------------------------------------------------------
    def create(self) -> None:
        self.allow_replication()
        if self.as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")
        self.directory.chmod(0o700)
        data = str(self.directory / "data")
        self._run(
            str(BIN / "pg_basebackup"),
            *("-h", self.primary["HOST"] or "127.0.0.1", "-p", str(self.primary["PORT"] or 5432)),
            *("-U", self.primary["USER"] or "postgres", "-D", data),
            *("-R", "-X", "stream", "-c", "fast", "--no-sync"),
        )
        copied = {name: self._primary_sql(f"SHOW {name}")[0][0] for name in COPIED_SETTINGS}
        conf = [
            f"port = {self.port}",
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{self.directory}'",
            "hot_standby = on",
            "shared_buffers = 32MB",
            "fsync = off",
            "synchronous_commit = off",
            *(f"{name} = {value}" for name, value in copied.items()),
        ]
        self._write(Path(data) / "postgresql.conf", "\n".join(conf) + "\n")
        self._write(Path(data) / "pg_hba.conf", "local all all trust\nhost all all 127.0.0.1/32 trust\n")
        self._write(Path(data) / "pg_ident.conf", "")
        self.start()

    def _write(self, path: Path, text: str) -> None:
        path.write_text(text, encoding="utf-8")
        if self.as_postgres:
            shutil.chown(path, "postgres", "postgres")

    @property
    def data(self) -> str:
        return str(self.directory / "data")

    def start(self, timeout: float = 300) -> None:
        """Starts the standby and waits until it accepts read-only connections. A hot standby opens
        only once a snapshot of the primary's running transactions shows none it cannot track (a
        transaction of over 64 subtransactions, such as another test run's, delays it): a
        ``CHECKPOINT`` on the primary every few seconds logs a new snapshot."""
        log = str(self.directory / "server.log")
        self._run(str(BIN / "pg_ctl"), "-D", self.data, "-l", log, "-W", "start")
        deadline, next_checkpoint = time.monotonic() + timeout, time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.running():
                return
            if time.monotonic() > next_checkpoint:
                self._primary_sql("CHECKPOINT")
                next_checkpoint = time.monotonic() + 5
            time.sleep(0.2)
        holders = self._primary_sql(
            "SELECT pid, datname, now() - xact_start FROM pg_stat_activity "
            "WHERE backend_xid IS NOT NULL ORDER BY xact_start LIMIT 5"
        )
        tail = (self.directory / "server.log").read_text(errors="replace")[-1500:]
        raise RuntimeError(
            f"the standby did not open for reads within {timeout:g} s; transactions open on the primary "
            f"(pid, database, age): {holders}\n{tail}"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(str(BIN / "pg_ctl"), "-D", self.data, "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        try:
            return bool(self.sql("SELECT pg_is_in_recovery()")[0][0])
        except psycopg.Error:
            return False

    def remove(self) -> None:
        if (self.directory / "data" / "postmaster.pid").exists():
            try:
                self.stop("immediate")
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- replay ---------------------------------------------------------------------------------
    def pause_replay(self) -> None:
        self.sql("SELECT pg_wal_replay_pause()")
        for _ in range(100):
            if self.sql("SELECT pg_get_wal_replay_pause_state()")[0][0] == "paused":
                return
            time.sleep(0.05)
        raise AssertionError("the standby's replay did not pause")

    def resume_replay(self) -> None:
        self.sql("SELECT pg_wal_replay_resume()")

    def wait_caught_up(self, timeout: float = 30) -> None:
        """Waits until the standby has replayed everything the primary had written when called."""
        target = parse_lsn(self._primary_sql("SELECT pg_current_wal_lsn()::text")[0][0])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            replay = self.sql("SELECT pg_last_wal_replay_lsn()::text")[0][0]
            if replay is not None and parse_lsn(replay) >= target:
                return
            time.sleep(0.05)
        raise AssertionError("the standby did not catch up with the primary")


def _drop_thread_connection() -> None:
    """This thread's ``replica`` connection object is made again from the alias's settings."""
    try:
        del connections[REPLICA]
    except AttributeError:
        pass


@pytest.fixture(scope="session")
def standby(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Standby]:
    if not on_postgresql():
        pytest.skip("streaming replication needs PostgreSQL: DATABASE_URL names SQLite")
    server = Standby(django_settings.DATABASES["default"])
    try:
        server.create()
        yield server
    finally:
        with django_db_blocker.unblock():
            connections[REPLICA].close()
        server.remove()


@pytest.fixture
def replica(standby: Standby, committed_db: None, settings: Any) -> Iterator[Standby]:
    """The routing on, the ``replica`` alias on the standby (caught up), the checks made at every
    read; each test narrows the settings it is about."""
    if not standby.running():
        standby.start()
    standby.resume_replay()
    standby.wait_caught_up()
    settings.ESANTE_REPLICA = True
    settings.ESANTE_REPLICA_MAX_LAG_SECONDS = 3600.0
    settings.ESANTE_REPLICA_PIN_SECONDS = 3600.0
    settings.ESANTE_REPLICA_CHECK_SECONDS = 0.0
    settings.ESANTE_REPLICA_RETRY_SECONDS = 0.0
    alias = connections.settings[REPLICA]
    saved = dict(alias)
    connections[REPLICA].close()
    alias.update(
        NAME=connections["default"].settings_dict["NAME"],
        HOST="127.0.0.1",
        PORT=str(standby.port),
        USER=saved.get("USER") or "postgres",
        OPTIONS={"connect_timeout": 2, "options": "-c default_transaction_read_only=on"},
        TEST={**saved.get("TEST", {}), "MIRROR": None},
    )
    _drop_thread_connection()
    monitor.forget()
    try:
        yield standby
    finally:
        connections[REPLICA].close()
        alias.clear()
        alias.update(saved)
        _drop_thread_connection()
        monitor.forget()
        if standby.running():
            standby.resume_replay()
