"""The standalone verifier (``python -m esante.tlog.verify``), run as a real process without
Django's settings against the platform served over HTTP: what it verifies, and each tampering it
must find: a bad signature, a rolled-back checkpoint, a forked tree (same size and grown), an
entry changed, moved, or not in the log."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction

from esante.audit.catalogue import AuditAction
from esante.audit.keys import load_or_create_signing_key
from esante.audit.models import AuditEvent
from esante.audit.services import audit_record
from esante.tlog import note
from esante.tlog.models import LogCheckpoint, LogLeaf, LogState, LogTile
from esante.tlog.selectors import leaf_opening
from esante.tlog.sequencer import sequence_pending

ROOT = Path(__file__).resolve().parents[2]


def record(n: int) -> None:
    with transaction.atomic():
        for i in range(n):
            audit_record(action=AuditAction.LOGOUT, actor_label="tester", details={"n": i})


def vkey() -> str:
    # The platform's key, created if no test before this one made it (the file runs alone too).
    return note.verifier_key(settings.TLOG_ORIGIN, load_or_create_signing_key().public_key())


def verify(url: str, state: Path, *extra: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "ESANTE", "DATABASE"))}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "esante.tlog.verify",
            "--url",
            url,
            "--key",
            key or vkey(),
            "--state",
            str(state),
            *extra,
        ],
        env={**env, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def entry_arguments(
    tmp_path: Path, sequence: int, *, canonical: str | None = None, index: int | None = None
) -> list[str]:
    """What the patient's journal shows for event #``sequence``: leaf index, salt, canonical text."""
    event = AuditEvent.objects.get(sequence=sequence)
    opening = leaf_opening(event.pk)
    assert opening is not None
    path = tmp_path / f"event-{sequence}.json"
    path.write_text(canonical if canonical is not None else event.canonical, encoding="utf-8")
    return [
        "--index",
        str(opening.index if index is None else index),
        "--salt",
        opening.salt.hex(),
        "--event",
        str(path),
    ]


def grow(n: int) -> None:
    record(n)
    sequence_pending(limit=100)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "seen.json"


def test_it_needs_no_django() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "ESANTE", "DATABASE"))}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, esante.tlog.verify; print(sorted(m for m in sys.modules if m.startswith('django')))",
        ],
        env={**env, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "[]"


def test_it_verifies_the_checkpoint_its_growth_and_an_entry(
    journal_url: str, state: Path, tmp_path: Path
) -> None:
    grow(300)
    first = verify(journal_url, state)
    assert first.returncode == 0, first.stdout
    assert "the log holds 300 events" in first.stdout and "No checkpoint was seen before" in first.stdout
    assert [c["size"] for c in json.loads(state.read_text())["checkpoints"]] == [300]
    grow(300)
    second = verify(journal_url, state, *entry_arguments(tmp_path, 42))
    assert second.returncode == 0, second.stdout
    assert "It extends the checkpoint seen before (300 events): the log only grew" in second.stdout
    assert "The journal entry 41 is in the log, in the tree of checkpoint 600" in second.stdout
    assert second.stdout.strip().endswith("Everything above was verified.")
    assert [c["size"] for c in json.loads(state.read_text())["checkpoints"]] == [300, 600]
    key_file = tmp_path / "key.txt"
    key_file.write_text(vkey() + "\n", encoding="utf-8")
    again = verify(journal_url, state, key=str(key_file))
    assert again.returncode == 0 and "same checkpoint as the one seen before (600 events)" in again.stdout


def test_a_bad_signature_is_found(journal_url: str, state: Path) -> None:
    grow(10)
    checkpoint = LogCheckpoint.objects.get()
    forged = checkpoint.note.replace("\n10\n", "\n11\n", 1)
    LogCheckpoint.objects.filter(pk=checkpoint.pk).update(note=forged)
    result = verify(journal_url, state)
    assert result.returncode == 1
    assert "NOT VERIFIED: the log's checkpoint is not validly signed" in result.stdout
    assert not state.exists()  # nothing unverified is remembered


def test_another_key_is_refused(journal_url: str, state: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    grow(10)
    other = note.verifier_key(settings.TLOG_ORIGIN, Ed25519PrivateKey.generate().public_key())
    result = verify(journal_url, state, key=other)
    assert result.returncode == 1 and "not validly signed" in result.stdout


def test_a_rolled_back_checkpoint_is_found(journal_url: str, state: Path) -> None:
    grow(300)
    assert verify(journal_url, state).returncode == 0
    LogCheckpoint.objects.filter(size__gt=200).delete()  # the log shows an older state again
    result = verify(journal_url, state)
    assert result.returncode == 1
    assert (
        "the log was ROLLED BACK: it now shows 200 events, but a checkpoint of 300 events was seen before"
        in (result.stdout)
    )


def _rebuild_the_log() -> None:
    """Another tree over the same events: the operator re-sequences them with new salts (what a
    split view shown to one reader would look like)."""
    LogCheckpoint.objects.all().delete()
    LogLeaf.objects.all().delete()
    LogTile.objects.all().delete()
    LogState.objects.all().delete()
    sequence_pending(limit=100)


def test_a_forked_tree_of_the_same_size_is_found(journal_url: str, state: Path) -> None:
    grow(300)
    assert verify(journal_url, state).returncode == 0
    _rebuild_the_log()
    result = verify(journal_url, state)
    assert result.returncode == 1
    assert "the log is FORKED: two different trees of 300 events were signed" in result.stdout


def test_a_forked_tree_that_grew_is_found(journal_url: str, state: Path) -> None:
    grow(300)
    assert verify(journal_url, state).returncode == 0
    record(50)
    _rebuild_the_log()
    result = verify(journal_url, state)
    assert result.returncode == 1
    assert (
        "the log is FORKED or was rewritten: the tree of 350 events does not extend the tree of 300"
        in result.stdout
    )
    assert [c["size"] for c in json.loads(state.read_text())["checkpoints"]] == [300]


@pytest.mark.parametrize(
    ("change", "found"),
    [
        ("changed", "entry 9 is NOT in the log as shown"),
        ("moved", "entry 10 is NOT in the log as shown"),  # reordered: shown at another place
        ("inserted", "entry 25 is NOT in the log: the checkpoint holds only 20 events"),
    ],
)
def test_an_entry_not_as_in_the_log_is_found(
    journal_url: str, state: Path, tmp_path: Path, change: str, found: str
) -> None:
    grow(20)
    event = AuditEvent.objects.get(sequence=10)
    arguments = {
        "changed": lambda: entry_arguments(
            tmp_path, 10, canonical=event.canonical.replace("tester", "someone")
        ),
        "moved": lambda: entry_arguments(tmp_path, 10, index=10),
        "inserted": lambda: entry_arguments(tmp_path, 10, index=25),
    }[change]()
    result = verify(journal_url, state, *arguments)
    assert result.returncode == 1
    assert found in result.stdout
    assert "is in the log" not in result.stdout and "Everything above was verified" not in result.stdout


def test_usage_and_network_problems_are_not_verdicts(state: Path, tmp_path: Path) -> None:
    unreachable = verify("http://127.0.0.1:9/journal", state)
    assert unreachable.returncode == 2 and "cannot check: cannot reach" in unreachable.stdout
    bad_key = verify("http://127.0.0.1:9/journal", state, key="not-a-key")
    assert bad_key.returncode == 2 and "the verifier key is unreadable" in bad_key.stdout
    partial = verify("http://127.0.0.1:9/journal", state, "--index", "3")
    assert partial.returncode == 2 and "--index, --salt and --event go together" in partial.stdout
