"""A real PostgreSQL hot standby of the test server, for the replica tests.

``standby`` (once per run) starts a ``Standby`` (``tests/replica/standby.py``: ``pg_basebackup -R
-X stream`` of the primary the suite runs on, ``pg_ctl`` on a free port of the loopback) after the
test database is created, so the standby holds it; it is stopped and its directory removed after
the run. When the primary cannot feed a standby (no WAL streaming, replication refused and its
``pg_hba.conf`` not writable) the fixture fails, saying why.

``replica`` (per test) points the ``replica`` alias at the standby, turns the routing on, and
works on committed data (``committed_db``: the standby only sees what the primary committed).
"""

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connections

from esante.core.replica import REPLICA, monitor

from .standby import Standby, StandbyError


def on_postgresql() -> bool:
    return bool(django_settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql")


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
        try:
            server.create()
        except StandbyError as error:
            pytest.fail(str(error))
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
