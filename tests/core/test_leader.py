"""The leader lock (esante.core.leader) on the suite's database: PostgreSQL's advisory lock on a
session of its own, or a flock next to the SQLite file. One holder at a time; the lock passes on
when its holder dies (a real process, SIGKILL) and, on PostgreSQL, when its session is cut; the
loops of a term stop when the lock is lost."""

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from esante.core.leader import FileLeaderLock, PostgresLeaderLock, lead_while_held, leader_lock
from esante.core.metrics import LEADER

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db  # the locks use sessions of their own; nothing is written


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def other_holder() -> Iterator[subprocess.Popen[str]]:
    """Another process on the same database that took the lock (and then just holds it)."""
    code = (
        "import django, sys, time\n"
        "django.setup()\n"
        "from esante.core.leader import leader_lock\n"
        "lock = leader_lock()\n"
        "while not lock.try_acquire():\n"
        "    time.sleep(0.05)\n"
        "print('leading', flush=True)\n"
        "time.sleep(120)\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    env["DATABASE_URL"] = _database_url()
    process = subprocess.Popen(
        [sys.executable, "-c", code], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "leading"
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def test_the_lock_matches_the_database() -> None:
    lock = leader_lock()
    if connection.vendor == "postgresql":
        assert isinstance(lock, PostgresLeaderLock)
    else:
        assert isinstance(lock, FileLeaderLock)
        assert lock.path == Path(connection.settings_dict["NAME"]).resolve().with_name(
            Path(connection.settings_dict["NAME"]).name + ".leader.lock"
        )


def test_one_holder_at_a_time_and_the_lock_passes_on_when_its_holder_is_killed(
    other_holder: subprocess.Popen[str],
) -> None:
    mine = leader_lock()
    try:
        assert not mine.try_acquire()
        assert not mine.still_held()
        time.sleep(0.3)
        assert not mine.try_acquire()  # still held: asking again changes nothing
        os.kill(other_holder.pid, signal.SIGKILL)
        other_holder.wait(timeout=10)
        assert wait_for(mine.try_acquire, timeout=10)
        assert mine.still_held()
        second = leader_lock()
        assert not second.try_acquire()  # and now it is mine alone
        mine.release()
        assert not mine.still_held()
        assert second.try_acquire()
        second.release()
    finally:
        mine.release()


def _cut(lock: Any) -> None:
    """Ends the lock's PostgreSQL session from another, as an operator or a network cut would."""
    pid = lock._connection.info.backend_pid
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        assert cursor.fetchone() == (True,)


def test_postgresql_a_cut_session_is_lost_leadership() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's advisory lock (the SQLite file lock lives as long as its process)")
    lock = leader_lock()
    other = leader_lock()
    try:
        assert lock.try_acquire()
        assert not other.try_acquire()
        _cut(lock)
        assert not lock.still_held()
        assert wait_for(other.try_acquire, timeout=10)
        assert not lock.try_acquire()
    finally:
        lock.release()
        other.release()


class Terms:
    """What ``lead_while_held`` started: one entry per term, set once its loops stopped."""

    def __init__(self) -> None:
        self.stopped: list[threading.Event] = []
        self.last_rounds = 0

    def start(self, term_stop: threading.Event) -> list[threading.Thread]:
        ended = threading.Event()

        def loop() -> None:
            term_stop.wait()
            ended.set()

        self.stopped.append(ended)
        thread = threading.Thread(target=loop, daemon=True, name="test-loop")
        thread.start()
        return [thread]

    def last_round(self) -> None:
        self.last_rounds += 1


def test_a_follower_leads_once_the_leader_is_gone_then_steps_down_at_stop(
    other_holder: subprocess.Popen[str], caplog: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="esante.leader")
    terms, stop, lock = Terms(), threading.Event(), leader_lock()
    thread = threading.Thread(
        target=lead_while_held,
        args=(stop, lock),
        kwargs={"start": terms.start, "on_last_term_end": terms.last_round, "interval": 0.05},
        daemon=True,
    )
    thread.start()
    try:
        time.sleep(0.5)
        assert terms.stopped == [] and LEADER._value.get() == 0  # a follower runs no loop
        os.kill(other_holder.pid, signal.SIGKILL)
        assert wait_for(lambda: len(terms.stopped) == 1, timeout=10)
        assert LEADER._value.get() == 1
        assert any("now leads" in r.getMessage() for r in caplog.records)
        assert terms.last_rounds == 0
    finally:
        stop.set()
        thread.join(timeout=10)
    assert terms.stopped[0].is_set() and terms.last_rounds == 1
    assert LEADER._value.get() == 0
    assert not lock.still_held() and any("stepped down" in r.getMessage() for r in caplog.records)
    successor = leader_lock()
    assert successor.try_acquire()  # released at once, not at the end of the process
    successor.release()


def test_postgresql_the_loops_stop_when_the_lock_is_lost(caplog: Any) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's advisory lock (the SQLite file lock lives as long as its process)")
    caplog.set_level(logging.WARNING, logger="esante.leader")
    terms, stop, lock = Terms(), threading.Event(), leader_lock()
    thread = threading.Thread(
        target=lead_while_held,
        args=(stop, lock),
        kwargs={"start": terms.start, "on_last_term_end": terms.last_round, "interval": 0.05},
        daemon=True,
    )
    thread.start()
    try:
        assert wait_for(lambda: len(terms.stopped) == 1, timeout=10)
        _cut(lock)
        assert wait_for(terms.stopped[0].is_set, timeout=10)  # the first term's loops stopped
        assert any("lost the leader lock" in r.getMessage() for r in caplog.records)
        # Nobody else holds it: the same instance leads again, in a new term.
        assert wait_for(lambda: len(terms.stopped) == 2, timeout=10)
        assert LEADER._value.get() == 1
    finally:
        stop.set()
        thread.join(timeout=10)
    assert terms.last_rounds == 1  # only the term that ended with the stop
