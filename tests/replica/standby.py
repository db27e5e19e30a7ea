"""A throwaway PostgreSQL hot standby of a local primary: ``tests/replica`` and the benchmarks
(``benchmarks/national_replica.py``) start it the same way.

``Standby(primary).create()`` seeds a second PostgreSQL 15 server from the primary (a Django
``DATABASES`` entry: ``HOST``, ``PORT``, ``USER``) with ``pg_basebackup -R -X stream`` — a copy of
the WHOLE cluster, every database on it — and starts it with ``pg_ctl`` on a free port of the
loopback, as the ``postgres`` OS user when run as root (PostgreSQL refuses to run as root);
``remove()`` stops it and deletes its directory. Streaming replication needs a ``replication`` line
in the primary's ``pg_hba.conf``: when the primary has none for 127.0.0.1, ``create`` appends
``host replication all 127.0.0.1/32 trust`` to the file the primary names (``SHOW hba_file``) and
reloads it (idempotent; ``.ci/run`` does the same before the tests); it raises ``StandbyError``,
saying so, when it cannot. The standby names itself to the primary by ``cluster_name``
(``application_name`` in the primary's ``pg_stat_replication``), so ``lag()`` reads its own row
when other standbys stream from the same primary.

Test and benchmark tooling only: nothing of the platform imports it. It can be imported before
Django is set up (the benchmarks choose the standby's port, then configure Django with it).
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg


class StandbyError(RuntimeError):
    """The primary cannot feed a standby (no WAL streaming, replication refused)."""


@dataclass(frozen=True)
class Lag:
    """One look at the replication: the primary's WAL position, the WAL bytes the standby has yet
    to replay (that position minus the standby's replay position), and the primary's own view of
    the time lag (``pg_stat_replication.replay_lag``, None when the standby is idle and caught up)."""

    at: float
    primary_lsn: int
    behind_bytes: int
    replay_lag_seconds: float | None


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Standby:
    """A hot standby of the primary, in a temporary directory, on its own port."""

    def __init__(self, primary: dict[str, Any], shared_buffers: str = "32MB") -> None:
        self.primary = primary
        self.port = _free_port()
        self.name = f"esante-standby-{self.port}"
        self.shared_buffers = shared_buffers
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
            raise StandbyError(
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
            raise StandbyError(
                f"the primary refuses replication connections from 127.0.0.1 and {hba_file} cannot be "
                f"written ({error}): add the line '{HBA_LINE}' to it and reload PostgreSQL"
            ) from None
        self._primary_sql("SELECT pg_reload_conf()")
        time.sleep(0.5)

    def cluster_bytes(self) -> int:
        """What ``pg_basebackup`` will copy, about: the size of every database of the primary."""
        return int(self._primary_sql("SELECT sum(pg_database_size(datname)) FROM pg_database")[0][0])

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
            f"cluster_name = '{self.name}'",
            "hot_standby = on",
            f"shared_buffers = {self.shared_buffers}",
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

    def lag(self) -> Lag:
        """The replication now, as the primary and the standby see it (two connections)."""
        from esante.core.replica import parse_lsn  # Django's settings are ready by now

        # The name is this class's own (a port number): no quoting to get wrong.
        query = (
            "SELECT pg_current_wal_lsn()::text, (SELECT EXTRACT(EPOCH FROM replay_lag)::float8 "  # noqa: S608
            f"FROM pg_stat_replication WHERE application_name = '{self.name}' LIMIT 1)"
        )
        rows = self._primary_sql(query)
        current, replay_lag = rows[0]
        replay = self.sql("SELECT pg_last_wal_replay_lsn()::text")[0][0]
        behind = max(0, parse_lsn(current) - parse_lsn(replay)) if replay else 0
        return Lag(time.time(), parse_lsn(current), behind, None if replay_lag is None else float(replay_lag))

    def wait_caught_up(self, timeout: float = 30) -> None:
        """Waits until the standby has replayed everything the primary had written when called."""
        from esante.core.replica import parse_lsn

        target = parse_lsn(self._primary_sql("SELECT pg_current_wal_lsn()::text")[0][0])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            replay = self.sql("SELECT pg_last_wal_replay_lsn()::text")[0][0]
            if replay is not None and parse_lsn(replay) >= target:
                return
            time.sleep(0.05)
        raise AssertionError("the standby did not catch up with the primary")
