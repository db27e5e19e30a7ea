"""The signer: heads signed every N events and every few seconds, written to the heads file and
its copies, pushed to a witness; run in a thread, by ``esante anchor_audit --every`` and by
``esante serve`` (real processes on the committed test database)."""

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from esante.audit.anchoring import (
    WitnessError,
    anchor_loop,
    audit_anchor,
    last_head,
    read_heads,
    read_signer_state,
)
from esante.audit.catalogue import AuditAction
from esante.audit.services import audit_record
from tests.audit.settle import settle

ESANTE = str(Path(sys.executable).with_name("esante"))
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def own_heads_files(settings: Any, tmp_path: Path) -> None:
    settings.AUDIT_HEADS_FILE = tmp_path / "heads.jsonl"
    settings.AUDIT_SIGNER_STATE_FILE = tmp_path / "signer-state.json"
    settings.AUDIT_HEADS_COPY_FILES = []
    settings.AUDIT_WITNESS_URL = ""


def record(n: int) -> None:
    for i in range(n):
        audit_record(action=AuditAction.LOGOUT, actor_label="tester", details={"n": i})
    settle()  # the signer signs the chain's head: batched, the chainer's pass first


def signed_sequence() -> int:
    head = last_head()
    return head.sequence if head else 0


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def signer() -> Iterator[Callable[..., None]]:
    stops: list[tuple[threading.Event, threading.Thread]] = []

    def start(**options: Any) -> None:
        stop = threading.Event()
        thread = threading.Thread(target=anchor_loop, args=(stop,), kwargs=options, daemon=True)
        thread.start()
        stops.append((stop, thread))

    yield start
    for stop, thread in stops:
        stop.set()
        thread.join(timeout=5)


def test_signer_signs_every_n_events(committed_db: None, signer: Callable[..., None]) -> None:
    signer(interval=3600, every_events=5, poll=0.05)
    record(4)
    time.sleep(0.3)
    assert signed_sequence() == 0  # 4 events wait: fewer than 5, and the interval is an hour
    record(1)
    assert wait_for(lambda: signed_sequence() == 5, timeout=5)
    record(7)
    assert wait_for(lambda: signed_sequence() >= 10, timeout=5)


def test_signer_signs_new_events_within_the_interval(committed_db: None, signer: Callable[..., None]) -> None:
    signer(interval=0.3, every_events=1000, poll=0.05)
    record(2)
    started = time.monotonic()
    assert wait_for(lambda: signed_sequence() == 2, timeout=5)
    assert time.monotonic() - started < 2
    lines = len(read_heads())
    time.sleep(0.5)
    assert len(read_heads()) == lines  # nothing new: nothing signed


class _Witness(BaseHTTPRequestHandler):
    received: list[bytes]
    status = 201

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(body)
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def witness() -> Iterator[tuple[str, type[_Witness]]]:
    handler = type("Witness", (_Witness,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/heads", handler
    server.shutdown()
    server.server_close()


@pytest.mark.django_db
def test_each_signed_head_goes_to_the_copy_and_the_witness(
    settings: Any, tmp_path: Path, witness: tuple[str, type[_Witness]]
) -> None:
    url, handler = witness
    copy = tmp_path / "elsewhere" / "heads.jsonl"
    settings.AUDIT_HEADS_COPY_FILES = [copy]
    settings.AUDIT_WITNESS_URL = url
    record(3)
    head = audit_anchor()
    assert head is not None and head.sequence == 3
    lines = Path(settings.AUDIT_HEADS_FILE).read_bytes()
    assert copy.read_bytes() == lines
    assert handler.received == [lines]
    assert json.loads(handler.received[0])["seq"] == 3
    assert audit_anchor() == head and len(handler.received) == 1  # unchanged head: not sent again


@pytest.mark.django_db
def test_a_copy_whose_volume_is_away_catches_up(settings: Any, tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    volume.write_text("not mounted")  # a file where the directory should be: writes fail
    copy = volume / "heads.jsonl"
    settings.AUDIT_HEADS_COPY_FILES = [copy]
    record(2)
    with pytest.raises(WitnessError, match=r"head #2 signed, but not written to .*volume/heads.jsonl"):
        audit_anchor()
    assert signed_sequence() == 2  # the heads file has it
    volume.unlink()
    volume.mkdir()
    record(1)
    assert audit_anchor() is not None
    assert copy.read_text() == Path(settings.AUDIT_HEADS_FILE).read_text()
    assert [head.sequence for head in read_heads(path=copy)] == [2, 3]


@pytest.mark.django_db
def test_a_witness_that_refuses_or_is_down_is_reported(
    settings: Any, witness: tuple[str, type[_Witness]]
) -> None:
    url, handler = witness
    handler.status = 500
    settings.AUDIT_WITNESS_URL = url
    record(1)
    with pytest.raises(WitnessError, match="answered 500"):
        audit_anchor()
    assert signed_sequence() == 1  # written to the heads file all the same
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    settings.AUDIT_WITNESS_URL = closed
    record(1)
    with pytest.raises(WitnessError, match="did not take the signed head"):
        audit_anchor()
    assert signed_sequence() == 2


# --- real processes on the committed test database ------------------------------------------------


def _environment(heads: Path, **extra: str) -> dict[str, str]:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        url = f"sqlite:///{db['NAME']}"
    else:
        password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
        url = f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": url,
        "ESANTE_AUDIT_HEADS_FILE": str(heads),
        "ESANTE_AUDIT_SIGNER_STATE_FILE": str(django_settings.AUDIT_SIGNER_STATE_FILE),
        "ESANTE_AUDIT_HEADS_COPY_FILE": "",
        "ESANTE_AUDIT_WITNESS_URL": "",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def _esante(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [ESANTE, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output


def test_anchor_audit_every_signs_while_events_are_written(committed_db: None, settings: Any) -> None:
    env = _environment(settings.AUDIT_HEADS_FILE, ESANTE_AUDIT_ANCHOR_EVERY_EVENTS="1000")
    record(3)
    process = subprocess.Popen(  # noqa: S603
        [ESANTE, "anchor_audit", "--every", "0.3"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert wait_for(lambda: signed_sequence() == 3, timeout=30)
        record(2)
        assert wait_for(lambda: signed_sequence() == 5, timeout=10)
    finally:
        output = _stop(process)
    assert "anchored head #3" in output  # (#5 may be printed after SIGTERM came)
    verified = _esante("verify_audit", "-v0", env=env)
    assert verified.returncode == 0, verified.stderr
    assert "audit trail intact: 5 events" in verified.stdout
    record(1)
    unsigned = _esante("verify_audit", "-v0", env=env)
    assert unsigned.returncode == 3
    assert "UNSIGNED TAIL" in unsigned.stderr and "1 events after the last signed head #5" in unsigned.stderr


def test_esante_serve_signs_the_head_while_it_serves(committed_db: None, settings: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = _environment(
        settings.AUDIT_HEADS_FILE, ESANTE_AUDIT_ANCHOR_SECONDS="0.3", ESANTE_AUDIT_ANCHOR_EVERY_EVENTS="1000"
    )
    process = subprocess.Popen(  # noqa: S603
        [ESANTE, "serve", "--port", str(port), "--workers", "2", "--certificate-port", "0"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def serving() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:  # noqa: S310
                return bool(response.status == 200)
        except OSError:
            return False

    try:
        assert wait_for(serving, timeout=30)
        with transaction.atomic():  # committed at once: the signer cannot sign #1 alone
            record(3)
        assert wait_for(lambda: signed_sequence() == 3, timeout=10)
        with transaction.atomic():
            record(2)
        assert wait_for(lambda: signed_sequence() == 5, timeout=10)
    finally:
        output = _stop(process)
    assert "audit anchoring failed" not in output
    # One signer for the two workers: every head once, in order.
    sequences = [head.sequence for head in read_heads()]
    assert sequences == sorted(set(sequences)) and sequences[0] == 3 and sequences[-1] == 5


# --- issue 10 review: a witness down then up, copies lagging, verification racing the signer ------


class _RestartableWitness:
    """A real local HTTP witness that can go down and come back on the same port."""

    def __init__(self) -> None:
        self.handler = type("Witness", (_Witness,), {"received": []})
        self.server: ThreadingHTTPServer | None = None
        self.port = 0
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/heads"

    def up(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self.handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
        self.server = None

    def sequences(self) -> list[int]:
        return [json.loads(body)["seq"] for body in self.handler.received]


@pytest.fixture
def restartable_witness() -> Iterator[_RestartableWitness]:
    witness = _RestartableWitness()
    yield witness
    if witness.server is not None:
        witness.down()


@pytest.mark.django_db
def test_heads_signed_while_the_witness_is_down_reach_it_once_it_is_back(
    settings: Any, restartable_witness: _RestartableWitness
) -> None:
    settings.AUDIT_WITNESS_URL = restartable_witness.url
    record(1)
    audit_anchor()
    assert restartable_witness.sequences() == [1]
    restartable_witness.down()
    for _ in range(2):
        record(1)
        with pytest.raises(WitnessError, match="did not take the signed head"):
            audit_anchor()
    assert signed_sequence() == 3 and read_signer_state().witness_sequence == 1
    restartable_witness.up()
    audit_anchor()  # nothing new to sign: the witness catches up all the same
    assert restartable_witness.sequences() == [1, 2, 3]
    assert b"".join(restartable_witness.handler.received) == Path(settings.AUDIT_HEADS_FILE).read_bytes()
    assert read_signer_state().witness_sequence == 3
    audit_anchor()
    assert restartable_witness.sequences() == [1, 2, 3]  # nothing sent twice


def test_the_signer_loop_reports_a_witness_down_every_interval_and_catches_it_up(
    committed_db: None,
    settings: Any,
    signer: Callable[..., None],
    restartable_witness: _RestartableWitness,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.AUDIT_WITNESS_URL = restartable_witness.url
    restartable_witness.down()
    caplog.set_level("ERROR", logger="esante.audit")
    signer(interval=0.2, every_events=1000, poll=0.05)
    record(2)
    assert wait_for(lambda: signed_sequence() == 2, timeout=5)

    def failures() -> int:
        return sum("did not take the signed head" in r.getMessage() for r in caplog.records)

    assert wait_for(lambda: failures() >= 3, timeout=5)  # no new event: retried and logged each time
    record(1)
    assert wait_for(lambda: signed_sequence() == 3, timeout=5)
    restartable_witness.up()
    assert wait_for(lambda: restartable_witness.sequences() == [2, 3], timeout=5)
    logged = failures()
    time.sleep(0.5)
    assert failures() == logged  # back: no more failures


@pytest.mark.django_db
def test_a_copy_whose_volume_is_away_reads_as_lagging_not_broken(settings: Any, tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    copy = volume / "heads.jsonl"
    settings.AUDIT_HEADS_COPY_FILES = [copy]
    record(2)
    audit_anchor()
    volume.rename(tmp_path / "unmounted")  # the volume goes away
    volume.write_text("not mounted")
    record(1)
    with pytest.raises(WitnessError):
        audit_anchor()
    volume.unlink()
    (tmp_path / "unmounted").rename(volume)  # back, without head #3
    out = io.StringIO()
    with pytest.raises(CommandError) as lagging:
        call_command("verify_audit", verbosity=0, stdout=out)
    assert lagging.value.returncode == 4
    assert "audit trail intact: 3 events" in str(lagging.value)
    assert (
        f"heads file copy LAGGING: the copy {copy} holds the heads up to #2, the heads file up to #3"
        in str(lagging.value)
    )
    record(1)
    audit_anchor()  # catches the copy up
    call_command("verify_audit", verbosity=0, stdout=out)
    assert "audit trail intact: 4 events" in out.getvalue()


def test_verification_reads_the_heads_files_as_of_one_moment(
    committed_db: None, settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10 review: a head signed between the reads of the heads file and of its copy made
    a live platform read as BROKEN. The reads now hold the heads lock: the signer waits."""
    from esante.audit import verification

    copy = tmp_path / "copy.jsonl"
    settings.AUDIT_HEADS_COPY_FILES = [copy]
    record(3)
    audit_anchor()
    original = verification.read_heads
    signers: list[threading.Thread] = []

    def sign_now() -> None:
        try:
            record(1)
            audit_anchor()
        finally:
            connection.close()

    def read_then_let_a_signer_in(public_key: Any, path: Path) -> Any:
        heads = original(public_key, path)
        if not signers:  # right after the heads file: a signer signs a new event
            signers.append(threading.Thread(target=sign_now))
            signers[0].start()
            signers[0].join(timeout=0.5)
        return heads

    monkeypatch.setattr(verification, "read_heads", read_then_let_a_signer_in)
    out = io.StringIO()
    try:
        call_command("verify_audit", verbosity=0, stdout=out)
    except CommandError as exc:  # event #4, written before its signer waited for the lock
        assert exc.returncode == 3, exc
        assert "1 events after the last signed head #3" in str(exc)
    else:
        assert "audit trail intact: 3 events" in out.getvalue()
    signers[0].join(timeout=10)
    assert signed_sequence() == 4  # the signer signed once the reads were done
    monkeypatch.undo()
    call_command("verify_audit", verbosity=0, stdout=out)
    assert "audit trail intact: 4 events" in out.getvalue()
