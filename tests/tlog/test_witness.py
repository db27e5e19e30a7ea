"""The witness (``esante witness``, C2SP tlog-witness), run as a real process: it cosigns a
checkpoint only once it has checked it against the last one it cosigned, and refuses a split
view, a rollback and a bad signature, its state unchanged. The platform's sequencer asks it to
cosign each new checkpoint and publishes the cosigned checkpoint; with the witness down, the
checkpoint is published with the log's signature alone and cosigned later. The standalone
verifier and Go's sumdb/note check the cosignature."""

import base64
import json
import logging
import os
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.db import transaction

from esante.audit.catalogue import AuditAction
from esante.audit.keys import load_or_create_signing_key, verification_public_key
from esante.audit.models import AuditEvent
from esante.audit.services import audit_record
from esante.tlog import merkle, note
from esante.tlog.models import LogCheckpoint
from esante.tlog.sequencer import sequence_pending
from esante.tlog.verification import verify_log
from esante.tlog.witnessing import WITNESS_REQUESTS, witness_latest

from .test_go_verifier import tlogcheck  # noqa: F401 (a fixture)
from .test_sequencer import _environment

ESANTE = str(Path(sys.executable).with_name("esante"))
ROOT = Path(__file__).resolve().parents[2]
NAME = "witness.test/w1"


def log_vkey() -> str:
    load_or_create_signing_key()
    return note.verifier_key(settings.TLOG_ORIGIN, verification_public_key())


@dataclass
class WitnessProcess:
    process: subprocess.Popen[str]
    url: str
    vkey: str
    state: Path
    output: list[str] = field(default_factory=list)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return "".join(self.output)


def start_witness(directory: Path, *, port: int = 0, log_key: str | None = None) -> WitnessProcess:
    process = subprocess.Popen(
        [
            ESANTE,
            "witness",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--name",
            NAME,
            "--key-file",
            str(directory / "witness-key.pem"),
            "--state-file",
            str(directory / "state.json"),
            "--log-key",
            log_key or log_vkey(),
        ],
        env=_environment(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    output: list[str] = []
    url = vkey = ""
    for line in process.stdout:
        output.append(line)
        if " listening on " in line:
            url = line.split(" listening on ")[1].strip()
        if line.startswith("verifier key: "):
            vkey = line.removeprefix("verifier key: ").strip()
            break
    assert url and vkey, "".join(output) + (process.stdout.read() if process.poll() is not None else "")
    witness = WitnessProcess(process, url, vkey, directory / "state.json", output)
    threading.Thread(target=lambda: output.extend(process.stdout or []), daemon=True).start()
    return witness


@pytest.fixture
def witness(tmp_path: Path) -> Iterator[WitnessProcess]:
    started = start_witness(tmp_path / "witness")
    yield started
    started.stop()


def post(url: str, body: bytes, path: str = "/add-checkpoint") -> tuple[int, str, str]:
    request = urllib.request.Request(url + path, data=body, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


class Tree:
    """A log held in memory, signed with the platform's log key (or another)."""

    def __init__(self, leaves: list[bytes], key: Ed25519PrivateKey | None = None, origin: str = "") -> None:
        self.hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
        self.key = key or load_or_create_signing_key()
        self.origin = origin or settings.TLOG_ORIGIN

    def root(self, size: int) -> bytes:
        return merkle.root_from_hashes(self.hashes[:size])

    def checkpoint(self, size: int) -> str:
        return note.sign_checkpoint(self.origin, size, self.root(size), self.key)

    def body(self, old: int, size: int, proof: list[bytes] | None = None) -> bytes:
        if proof is None:
            proof = merkle.consistency_proof(old, self.hashes[:size]) if old else []
        lines = [f"old {old}", *(base64.b64encode(p).decode() for p in proof)]
        return ("\n".join(lines) + "\n\n" + self.checkpoint(size)).encode()


def leaves(n: int, changed: int | None = None) -> list[bytes]:
    return [bytes([i % 256, 1 if i == changed else 0]) * 16 for i in range(n)]


def cosigner(witness: WitnessProcess) -> note.Verifier:
    return note.parse_cosigner_key(witness.vkey)


def test_the_witness_cosigns_a_consistent_checkpoint(witness: WitnessProcess) -> None:
    tree = Tree(leaves(20))
    before = time.time()
    status, content_type, line = post(witness.url, tree.body(0, 5))
    assert (status, content_type) == (200, "text/plain; charset=utf-8"), line
    # C2SP tlog-cosignature: one note signature line, key ID over 0x04, u64 timestamp, Ed25519.
    assert line.startswith(f"\u2014 {NAME} ") and line.endswith("\n") and line.count("\n") == 1
    raw = base64.b64decode(line.split(" ")[2])
    assert len(raw) == 4 + 8 + 64 and raw[:4] == cosigner(witness).key_id
    stamp = note.open_cosignature(tree.checkpoint(5) + line, cosigner(witness))
    assert before - 1 <= stamp <= time.time() + 1
    assert stamp == int.from_bytes(raw[4:12], "big")
    message = (
        f"cosignature/v1\ntime {stamp}\n".encode()
        + note.checkpoint_text(settings.TLOG_ORIGIN, 5, tree.root(5)).encode()
    )
    cosigner(witness).public.verify(raw[12:], message)
    # Never a log signature: the same bytes do not verify as a signature of the checkpoint text.
    with pytest.raises(note.NoteError):
        note.open_cosignature(tree.checkpoint(6) + line, cosigner(witness))
    state = json.loads(witness.state.read_text())["logs"][settings.TLOG_ORIGIN]
    assert (state["size"], base64.b64decode(state["root"])) == (5, tree.root(5))

    status, _, line = post(witness.url, tree.body(5, 13))
    assert status == 200
    note.open_cosignature(tree.checkpoint(13) + line, cosigner(witness))
    assert json.loads(witness.state.read_text())["logs"][settings.TLOG_ORIGIN]["size"] == 13
    assert post(witness.url, tree.body(13, 13))[0] == 200  # the same checkpoint again
    with urllib.request.urlopen(witness.url + "/key", timeout=5) as response:  # noqa: S310
        assert response.read().decode().strip() == witness.vkey


def test_a_split_view_is_refused(witness: WitnessProcess) -> None:
    """Two different trees of the same size, both signed with the log's key: the witness that
    cosigned one refuses the other, and a grown fork too; its state does not move."""
    honest, fork = Tree(leaves(20)), Tree(leaves(20, changed=2))
    assert post(witness.url, honest.body(0, 8))[0] == 200
    state = witness.state.read_bytes()
    status, content_type, reason = post(witness.url, fork.body(8, 8))
    assert status == 409 and content_type.startswith("text/plain")
    assert reason.startswith("split view: another tree of size 8 was cosigned")
    status, _, reason = post(witness.url, fork.body(8, 12))  # the fork's own proof from 8 to 12
    assert status == 422 and "not proven to extend the tree of size 8" in reason
    assert witness.state.read_bytes() == state
    assert post(witness.url, honest.body(8, 12))[0] == 200  # the honest log goes on
    time.sleep(0.2)
    assert "witness REFUSED a checkpoint (409): split view" in witness.log()


def test_a_rollback_is_refused(witness: WitnessProcess) -> None:
    tree = Tree(leaves(20))
    assert post(witness.url, tree.body(0, 9))[0] == 200
    state = witness.state.read_bytes()
    status, _, reason = post(witness.url, tree.body(9, 5, proof=[]))
    assert status == 400 and "above the checkpoint's size 5" in reason
    for old in (0, 5):  # a log that says it was last cosigned smaller: told the size held
        status, content_type, body = post(witness.url, tree.body(old, 5))
        assert (status, content_type, body) == (409, "text/x.tlog.size", "9\n")
    assert witness.state.read_bytes() == state


def test_a_bad_signature_is_refused(witness: WitnessProcess) -> None:
    other_key = Tree(leaves(10), key=Ed25519PrivateKey.generate())
    status, _, reason = post(witness.url, other_key.body(0, 5))
    assert status == 403 and "not validly signed by the log's key" in reason
    tampered = Tree(leaves(10)).body(0, 5).decode()
    stamp = tampered.rsplit(" ", 1)[1]
    raw = bytearray(base64.b64decode(stamp))
    raw[10] ^= 1
    tampered = tampered.replace(stamp, base64.b64encode(bytes(raw)).decode() + "\n")
    status, _, reason = post(witness.url, tampered.encode())
    assert status == 403 and "does not verify" in reason
    unknown = Tree(leaves(10), key=Ed25519PrivateKey.generate(), origin="other.example/log")
    assert post(witness.url, unknown.body(0, 5))[:1] == (404,)
    assert not witness.state.exists()  # nothing cosigned, nothing written


def test_malformed_requests_are_refused(witness: WitnessProcess) -> None:
    tree = Tree(leaves(10))
    assert post(witness.url, tree.body(0, 4))[0] == 200
    state = witness.state.read_bytes()
    checkpoint = tree.checkpoint(6)
    proof = merkle.consistency_proof(4, tree.hashes[:6])
    wrong = [proof[0], bytes(32), *proof[2:]] if len(proof) > 1 else [bytes(32)]
    assert post(witness.url, tree.body(4, 6, proof=wrong))[0] == 422
    assert post(witness.url, f"old 4\n{checkpoint}".encode())[0] == 400  # no empty line
    assert post(witness.url, f"old 04\n\n{checkpoint}".encode())[0] == 400
    assert post(witness.url, ("old 4\n" + "AAAA\n" + "\n" + checkpoint).encode())[0] == 400
    too_long = "old 4\n" + (base64.b64encode(bytes(32)).decode() + "\n") * 64 + "\n" + checkpoint
    assert post(witness.url, too_long.encode())[0] == 400
    assert post(witness.url, b"old 4\n\n" + b"x" * 17_000)[0] == 413
    assert post(witness.url, tree.body(4, 6), path="/elsewhere")[0] == 404
    try:
        urllib.request.urlopen(witness.url + "/add-checkpoint", timeout=5)  # noqa: S310
    except urllib.error.HTTPError as exc:
        assert exc.code == 405
    else:
        pytest.fail("GET /add-checkpoint answered")
    assert witness.state.read_bytes() == state


def test_a_fresh_witness_takes_no_proof_from_size_zero(witness: WitnessProcess) -> None:
    tree = Tree(leaves(10))
    status, _, reason = post(witness.url, tree.body(0, 6, proof=[bytes(32)]))
    assert status == 400 and "empty from size 0" in reason
    assert not witness.state.exists()


def test_the_key_is_made_once_and_printed_as_a_verifier_key(tmp_path: Path) -> None:
    key_file = tmp_path / "k" / "witness-key.pem"

    def printed() -> str:
        done = subprocess.run(
            [ESANTE, "witness", "--print-key", "--name", NAME, "--key-file", str(key_file)],
            env=_environment(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout.strip()

    first = printed()
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert printed() == first
    parsed = note.parse_cosigner_key(first)
    assert parsed.name == NAME and base64.b64decode(first.split("+", 2)[2])[0] == 0x04
    with pytest.raises(note.NoteError):
        note.parse_verifier_key(first)  # not a log key


def test_an_unreadable_state_file_stops_the_witness(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(AssertionError, match="unreadable"):
        start_witness(tmp_path)


# --- the platform's sequencer and the witness ---------------------------------------------------


def record(n: int) -> None:
    with transaction.atomic():
        for i in range(n):
            audit_record(action=AuditAction.LOGOUT, actor_label="tester", details={"n": i})


def served(journal_url: str) -> str:
    with urllib.request.urlopen(journal_url + "/checkpoint", timeout=5) as response:  # noqa: S310
        return str(response.read().decode())


def refusals() -> int:
    return AuditEvent.objects.filter(action=AuditAction.TLOG_WITNESS_REFUSED).count()


def verify(url: str, state: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "ESANTE", "DATABASE"))}
    return subprocess.run(
        [sys.executable, "-m", "esante.tlog.verify", "--url", url, "--key", log_vkey(), "--state", str(state)]
        + list(extra),
        env={**env, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_platform_publishes_the_cosigned_checkpoint(
    journal_url: str, witness: WitnessProcess, settings: Any, tmp_path: Path
) -> None:
    settings.TLOG_WITNESS_URL, settings.TLOG_WITNESS_KEY = witness.url, witness.vkey
    record(5)
    sequence_pending()
    assert witness_latest() == "cosigned"
    assert witness_latest() == ""  # answered: not asked again
    published = served(journal_url)
    assert note.open_checkpoint(published, note.parse_verifier_key(log_vkey())).size == 5
    note.open_cosignature(published, cosigner(witness))
    assert note.signature_names(published) == [settings.TLOG_ORIGIN, NAME]
    record(7)
    sequence_pending()
    assert witness_latest() == "cosigned"  # from 5, with a consistency proof from the tiles
    published = served(journal_url)
    note.open_cosignature(published, cosigner(witness))
    assert json.loads(witness.state.read_text())["logs"][settings.TLOG_ORIGIN]["size"] == 12
    result = verify_log()
    assert result.ok and (result.checkpoints, result.cosigned) == (2, 2)
    assert refusals() == 0

    state = tmp_path / "seen.json"
    done = verify(journal_url, state, "--witness-key", witness.vkey)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"The witness {NAME} ({cosigner(witness).key_id.hex()}) cosigned this checkpoint" in done.stdout
    plain = verify(journal_url, state)
    assert plain.returncode == 0 and f"1 other signature(s) ({NAME}), not checked" in plain.stdout
    another = note.verifier_key(NAME, Ed25519PrivateKey.generate().public_key(), note.ALG_COSIGNATURE_V1)
    refused = verify(journal_url, state, "--witness-key", another)
    assert refused.returncode == 1
    assert f"NOT VERIFIED: the checkpoint is NOT cosigned by the witness {NAME}" in refused.stdout

    # A stored cosignature that does not verify is found by esante verify_log.
    first = LogCheckpoint.objects.get(size=5)
    forged = note.cosign(note.note_text(first.note), NAME, Ed25519PrivateKey.generate(), 1)
    stamp = forged.split(" ")[2]
    raw = base64.b64decode(stamp)
    mixed = base64.b64encode(cosigner(witness).key_id + raw[4:]).decode()  # its key ID, not its key
    LogCheckpoint.objects.filter(pk=first.pk).update(cosignature=forged.replace(stamp.strip(), mixed))
    result = verify_log()
    assert not result.ok
    assert result.problem == (
        f"checkpoint 5: the witness's cosignature stored with it: the cosignature of {NAME} does not verify"
    )


def go_command(binary: Path, url: str, old: Path, index: int) -> list[str]:
    return [
        str(binary),
        "-url",
        url,
        "-vkey",
        log_vkey(),
        "-origin",
        settings.TLOG_ORIGIN,
        "-old",
        str(old),
        "-index",
        str(index),
    ]


@pytest.mark.skipif(not Path("/usr/bin/go").exists(), reason="Go is not installed (Debian golang-go)")
def test_go_verifies_the_cosigned_checkpoint(
    tlogcheck: Path,  # noqa: F811
    journal_url: str,
    witness: WitnessProcess,
    settings: Any,
    tmp_path: Path,
) -> None:
    settings.TLOG_WITNESS_URL, settings.TLOG_WITNESS_KEY = witness.url, witness.vkey
    record(5)
    sequence_pending()
    old = tmp_path / "old"
    old.write_text(LogCheckpoint.objects.get(size=5).note)
    record(300)
    sequence_pending(limit=100)
    assert witness_latest() == "cosigned"

    def run(key: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *go_command(tlogcheck, journal_url, old, 260),
                "-witness",
                key,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    result = run(witness.vkey)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ok: witness cosignature ({NAME}), note.Open with both verifiers" in result.stdout
    assert result.stdout.count("ok:") == 7
    another = note.verifier_key(NAME, Ed25519PrivateKey.generate().public_key(), note.ALG_COSIGNATURE_V1)
    result = run(another)
    assert result.returncode == 1 and "FAIL: the checkpoint is not cosigned by the witness" in result.stdout


def test_the_witness_down_then_back(
    journal_url: str, tmp_path: Path, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "witness"
    first = start_witness(directory)
    first.stop()
    settings.TLOG_WITNESS_URL, settings.TLOG_WITNESS_KEY = first.url, first.vkey
    record(3)
    sequence_pending()
    unreachable = WITNESS_REQUESTS.labels(outcome="unreachable")._value.get()
    with caplog.at_level(logging.WARNING, logger="esante.tlog"):
        assert witness_latest() == "unreachable"
    assert "checkpoint 3 published with the log's signature alone" in caplog.text
    assert WITNESS_REQUESTS.labels(outcome="unreachable")._value.get() == unreachable + 1
    published = served(journal_url)
    assert note.signature_names(published) == [settings.TLOG_ORIGIN]
    note.open_checkpoint(published, note.parse_verifier_key(log_vkey()))
    record(2)
    sequence_pending()
    assert witness_latest() == "unreachable"  # every pass asks again
    back = start_witness(directory, port=int(first.url.rsplit(":", 1)[1]))
    try:
        assert back.vkey == first.vkey  # the same key, read from its file
        assert witness_latest() == "cosigned"
        published = served(journal_url)
        assert note.signature_names(published) == [settings.TLOG_ORIGIN, NAME]
        note.open_cosignature(published, cosigner(back))
        assert LogCheckpoint.objects.get(size=3).cosignature == ""  # only the latest is asked
    finally:
        back.stop()
    assert refusals() == 0


def test_a_witness_refusal_is_logged_audited_and_not_repeated(
    journal_url: str, witness: WitnessProcess, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The witness was shown another tree of size 3 (signed with the log's key): the platform's
    own checkpoint 3 is a split view to it."""
    assert post(witness.url, Tree(leaves(3)).body(0, 3))[0] == 200
    settings.TLOG_WITNESS_URL, settings.TLOG_WITNESS_KEY = witness.url, witness.vkey
    record(3)
    sequence_pending()
    refused = WITNESS_REQUESTS.labels(outcome="refused")._value.get()
    with caplog.at_level(logging.ERROR, logger="esante.tlog"):
        assert witness_latest() == "refused"  # asked from 0, told 3, asked from 3: split view
    assert "the witness REFUSED checkpoint 3 (409: split view" in caplog.text
    assert WITNESS_REQUESTS.labels(outcome="refused")._value.get() == refused + 1
    checkpoint = LogCheckpoint.objects.get(size=3)
    assert checkpoint.witness_refusal.startswith("409: split view: another tree of size 3 was cosigned")
    assert checkpoint.cosignature == ""
    event = AuditEvent.objects.get(action=AuditAction.TLOG_WITNESS_REFUSED)
    assert event.outcome == AuditEvent.Outcome.REFUSED
    assert (event.object_type, event.object_id, event.patient_id) == ("checkpoint", "3", None)
    assert event.details["size"] == 3 and event.details["status"] == 409
    assert event.details["reason"].startswith("split view")
    assert note.signature_names(served(journal_url)) == [settings.TLOG_ORIGIN]  # still published
    assert witness_latest() == ""  # this checkpoint is not offered again
    assert refusals() == 1


def test_esante_sequence_log_asks_the_witness(
    journal_url: str, witness: WitnessProcess, settings: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from django.core.management import call_command

    settings.TLOG_WITNESS_URL, settings.TLOG_WITNESS_KEY = witness.url, witness.vkey
    record(4)
    call_command("sequence_log")
    assert "sequenced 4 events: checkpoint 4\nwitness: cosigned" in capsys.readouterr().out
    note.open_cosignature(served(journal_url), cosigner(witness))
    call_command("sequence_log")
    assert "witness:" not in capsys.readouterr().out  # already cosigned: not asked again
