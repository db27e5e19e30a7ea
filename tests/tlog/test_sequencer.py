"""The sequencer: leaves are salted commitments assigned in event order, batch by batch, each
batch one transaction ending in a signed checkpoint; tampered events never reach the log; a
sequencer killed mid-batch loses and duplicates nothing (a real process, SIGKILL)."""

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, transaction

from esante.audit import triggers
from esante.audit.catalogue import AuditAction
from esante.audit.keys import verification_public_key
from esante.audit.models import AuditEvent
from esante.audit.services import audit_record
from esante.tlog import merkle, note
from esante.tlog.models import LogCheckpoint, LogLeaf, LogState, LogTile
from esante.tlog.selectors import inclusion_for_event, inclusions_for_events, latest_checkpoint, leaf_opening
from esante.tlog.sequencer import SequencerRefused, sequence_batch, sequence_pending
from tests.audit.settle import settle

ESANTE = str(Path(sys.executable).with_name("esante"))
ROOT = Path(__file__).resolve().parents[2]


def record(n: int) -> list[AuditEvent]:
    events = [
        audit_record(action=AuditAction.LOGOUT, actor_label="tester", details={"n": i}) for i in range(n)
    ]
    return settle(events)


def verifier() -> note.Verifier:
    return note.parse_verifier_key(note.verifier_key(settings.TLOG_ORIGIN, verification_public_key()))


def reference_root() -> bytes:
    return merkle.tree_hash(
        [bytes(c) for c in LogLeaf.objects.order_by("index").values_list("commitment", flat=True)]
    )


def assert_log_consistent() -> int:
    """Leaves 0..n-1 without gaps, for events #1..#n in order, the state and the latest
    checkpoint agreeing with the leaves; returns n."""
    pairs = list(LogLeaf.objects.order_by("index").values_list("index", "event__sequence"))
    assert pairs == [(i, i + 1) for i in range(len(pairs))]
    state = LogState.objects.filter(pk=1).first()
    if state is None:  # no batch ever committed
        assert not pairs and not LogCheckpoint.objects.exists()
        return 0
    assert state.size == len(pairs) == state.last_sequence
    checkpoint = latest_checkpoint()
    if pairs:
        assert checkpoint is not None and checkpoint.size == state.size
        opened = note.open_checkpoint(checkpoint.note, verifier(), settings.TLOG_ORIGIN)
        assert opened.size == state.size and opened.root == bytes(state.root) == reference_root()
    return len(pairs)


@pytest.mark.django_db
def test_a_leaf_is_a_salted_commitment_to_the_event() -> None:
    events = record(3)
    result = sequence_batch()
    assert (result.added, result.size) == (3, 3)
    salts = set()
    for index, event in enumerate(events):
        opening = leaf_opening(event.pk)
        assert opening is not None and opening.index == index
        assert len(opening.salt) == 32
        assert opening.commitment == hashlib.sha256(opening.salt + event.canonical.encode()).digest()
        # Not the event's own hash: nobody can confirm a guessed event from the public leaf.
        assert opening.commitment.hex() != event.hash
        assert opening.commitment != hashlib.sha256(event.canonical.encode()).digest()
        salts.add(opening.salt)
    assert len(salts) == 3
    level0 = bytes(LogTile.objects.get(level=0, index=0).hashes)
    assert level0 == b"".join(
        merkle.leaf_hash(bytes(c))
        for c in LogLeaf.objects.order_by("index").values_list("commitment", flat=True)
    )
    assert assert_log_consistent() == 3


@pytest.mark.django_db
def test_batches_each_end_in_a_signed_checkpoint() -> None:
    record(10)
    sizes = []
    while (result := sequence_batch(limit=3)).added:
        sizes.append(result.size)
    assert sizes == [3, 6, 9, 10]
    assert list(LogCheckpoint.objects.values_list("size", flat=True)) == [3, 6, 9, 10]
    hashes = [
        merkle.leaf_hash(bytes(c))
        for c in LogLeaf.objects.order_by("index").values_list("commitment", flat=True)
    ]
    for checkpoint in LogCheckpoint.objects.all():
        opened = note.open_checkpoint(checkpoint.note, verifier(), "esante.lu/edocuments")
        assert opened.root == merkle.root_from_hashes(hashes[: checkpoint.size]) == bytes(checkpoint.root)
    assert sequence_batch().added == 0
    assert LogCheckpoint.objects.count() == 4  # nothing new, no new checkpoint
    record(1)
    assert sequence_pending() == 1
    assert assert_log_consistent() == 11


@pytest.mark.django_db
def test_inclusion_for_event_once_a_checkpoint_covers_it() -> None:
    first, second = record(2)
    assert inclusion_for_event(first.pk) is None
    sequence_batch()
    (third,) = record(1)
    assert inclusion_for_event(first.pk) == (0, 2)
    assert inclusion_for_event(second.pk) == (1, 2)
    assert inclusion_for_event(third.pk) is None
    sequence_batch()
    assert inclusion_for_event(first.pk) == (0, 3)
    assert inclusion_for_event(third.pk) == (2, 3)
    (fourth,) = record(1)
    ids = [first.pk, second.pk, third.pk, fourth.pk]
    assert inclusions_for_events(ids) == {first.pk: (0, 3), second.pk: (1, 3), third.pk: (2, 3)}


def _tamper(sql: str, params: list[object]) -> None:
    triggers.remove(connection)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
    finally:
        triggers.install(connection)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("sql", "found"),
    [
        ("UPDATE audit_auditevent SET motif = 'changed' WHERE sequence = 4", "its columns differ"),
        (
            "UPDATE audit_auditevent SET canonical = canonical || ' ' WHERE sequence = 4",
            "its hash does not match",
        ),
        ("UPDATE audit_auditevent SET mac = NULL WHERE sequence = 4", "it has no MAC"),
        ("UPDATE audit_auditevent SET mac = %s WHERE sequence = 4", "its MAC does not match"),
        ("DELETE FROM audit_auditevent WHERE sequence = 4", "is missing"),
    ],
)
def test_a_tampered_event_never_reaches_the_log(sql: str, found: str) -> None:
    record(3)
    sequence_batch()
    record(3)
    _tamper(sql, ["0" * 64] if "%s" in sql else [])
    with pytest.raises(SequencerRefused, match=found):
        sequence_batch()
    assert LogLeaf.objects.count() == 3 and LogCheckpoint.objects.count() == 1
    assert assert_log_consistent() == 3


@pytest.mark.django_db
def test_an_event_rewritten_after_it_was_sequenced_breaks_the_next_batch() -> None:
    record(3)
    sequence_batch()
    record(1)
    # Event #3 re-hashed consistently (chain and content, no MAC key needed for #3 if left as is):
    # #4 no longer links to the hash the log holds for #3.
    _tamper("UPDATE audit_auditevent SET prev_hash = %s WHERE sequence = 4", ["f" * 64])
    with pytest.raises(SequencerRefused, match="does not link"):
        sequence_batch()
    assert LogLeaf.objects.count() == 3


# --- a real sequencer process, killed mid-batch ----------------------------------------------------


def _environment() -> dict[str, str]:
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
        "ESANTE_AUDIT_KEY_FILE": str(settings.AUDIT_SIGNING_KEY_FILE),
        "ESANTE_AUDIT_MAC_KEY_FILE": str(settings.AUDIT_MAC_KEY_FILE),
        "PYTHONUNBUFFERED": "1",
    }


def _kill_after_leaves_written(batches_before_kill: int) -> None:
    """Runs ``esante sequence_log``; SIGKILLs it as soon as it says that batch number
    ``batches_before_kill`` (counted from 1) has written its leaves, before its tiles and commit."""
    process = subprocess.Popen(
        [ESANTE, "sequence_log", "--batch", "2000", "-v2"],
        env=_environment(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = 0
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("leaves "):
                seen += 1
                if seen == batches_before_kill:
                    os.kill(process.pid, signal.SIGKILL)
                    break
    finally:
        process.wait(timeout=60)
        process.stdout.close()  # type: ignore[union-attr]
    assert process.returncode == -signal.SIGKILL


def test_a_sequencer_killed_mid_batch_loses_and_duplicates_nothing(committed_db: None) -> None:
    with transaction.atomic():
        record(9000)
    sizes = []
    for batches in (1, 2, 1):
        before = LogState.objects.filter(pk=1).values_list("size", flat=True).first() or 0
        _kill_after_leaves_written(batches)
        size = assert_log_consistent()
        # Batches before the one killed committed; the one killed may have reached its commit
        # just before the signal, never half of it.
        assert size in (before + 2000 * (batches - 1), before + 2000 * batches)
        sizes.append(size - before - 2000 * (batches - 1))
    assert 0 in sizes  # at least one kill landed inside a batch's transaction, and it left nothing
    result = subprocess.run(
        [ESANTE, "sequence_log", "--batch", "2000"],
        env=_environment(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert assert_log_consistent() == 9000
    assert set(LogLeaf.objects.values_list("event_id", flat=True)) == set(
        AuditEvent.objects.values_list("id", flat=True)
    )


def test_concurrent_sequencers_put_each_event_once(committed_db: None) -> None:
    import threading

    from django.db import connections

    record(1500)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            sequence_pending(limit=100)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert assert_log_consistent() == 1500
    sizes = list(LogCheckpoint.objects.values_list("size", flat=True))
    assert sizes == sorted(set(sizes)) and sizes[-1] == 1500


@pytest.mark.django_db
def test_without_the_mac_key_nothing_is_sequenced(settings: Any, tmp_path: Path) -> None:
    from esante.audit.keys import forget_mac_keys

    record(2)
    settings.AUDIT_MAC_KEY_FILE = tmp_path / "absent-mac-key"
    forget_mac_keys()
    try:
        with pytest.raises(SequencerRefused, match="MACs cannot be checked"):
            sequence_batch()
    finally:
        forget_mac_keys()
    assert not LogLeaf.objects.exists() and not (tmp_path / "absent-mac-key").exists()
