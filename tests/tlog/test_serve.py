"""``esante serve`` sequences new audit events into the public log in a thread of its master
process, has the witness (``esante witness``, another real process) cosign them, and serves the
cosigned checkpoint at /journal/checkpoint (a real server process)."""

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db import transaction

from esante.audit.catalogue import AuditAction
from esante.audit.keys import verification_public_key
from esante.audit.services import audit_record
from esante.tlog import note
from esante.tlog.models import LogCheckpoint

from .test_sequencer import _environment
from .test_witness import NAME, start_witness

ESANTE = str(Path(sys.executable).with_name("esante"))
ROOT = Path(__file__).resolve().parents[2]


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_esante_serve_sequences_and_serves_checkpoints(
    committed_db: None, tmp_path: Path, settings: Any
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    witness = start_witness(tmp_path / "witness")
    env = {
        **_environment(),
        "ESANTE_TLOG_WITNESS_URL": witness.url,
        "ESANTE_TLOG_WITNESS_KEY": witness.vkey,
        "ESANTE_TLOG_SEQUENCE_SECONDS": "0.3",
        "ESANTE_AUDIT_HEADS_FILE": str(tmp_path / "heads.jsonl"),
        "ESANTE_AUDIT_SIGNER_STATE_FILE": str(tmp_path / "signer-state.json"),
    }
    process = subprocess.Popen(
        [ESANTE, "serve", "--port", str(port), "--workers", "2", "--certificate-port", "0"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def served_size() -> int:
        """The size of the served checkpoint once it carries the witness's cosignature."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/journal/checkpoint", timeout=1) as response:  # noqa: S310
                text = response.read().decode()
        except OSError:
            return -1
        vkey = note.verifier_key(settings.TLOG_ORIGIN, verification_public_key())
        size = note.open_checkpoint(text, note.parse_verifier_key(vkey), settings.TLOG_ORIGIN).size
        try:
            note.open_cosignature(text, note.parse_cosigner_key(witness.vkey))
        except note.NoteError:
            return -2
        return size

    try:
        with transaction.atomic():
            for i in range(5):
                audit_record(action=AuditAction.LOGOUT, actor_label="tester", details={"n": i})
        assert wait_for(lambda: served_size() == 5, timeout=30)
        with transaction.atomic():
            for i in range(3):
                audit_record(action=AuditAction.LOGOUT, actor_label="tester", details={"n": i})
        assert wait_for(lambda: served_size() == 8, timeout=10)
    finally:
        witness.stop()
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    assert "sequencing failed" not in output and "REFUSED" not in output
    assert "signature alone" not in output and f"checkpoint 8 cosigned by the witness {NAME}" in output
    assert "witness cosigned checkpoint 8 of" in witness.log()
    sizes = list(LogCheckpoint.objects.values_list("size", flat=True))
    assert sizes == sorted(set(sizes)) and sizes[-1] == 8  # one sequencer for the two workers
