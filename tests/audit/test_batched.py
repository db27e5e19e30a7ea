"""Batched chaining (``AUDIT_CHAINING = "batched"``): events written unchained without a lock,
chained by the chainer in batches, byte for byte as inline chaining writes them; the intake MAC
refuses a forged or changed waiting event; the triggers allow the one chaining UPDATE and nothing
else; concurrent writers' events are each chained once, gaplessly; a chainer killed mid-batch (a
real process, SIGKILL) loses and duplicates nothing."""

import datetime
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from django.db import DatabaseError, connection, connections, transaction

from esante.audit import triggers
from esante.audit.catalogue import AuditAction, AuditOutcome
from esante.audit.chaining import ChainRefused, chain_batch, chain_pending
from esante.audit.keys import event_mac, intake_mac
from esante.audit.models import AuditChainHead, AuditEvent
from esante.audit.selectors import events_of_actor
from esante.audit.services import (
    GENESIS_HASH,
    _hash,
    _payload,
    audit_record,
    audit_record_many,
    canonical_bytes,
    content_text,
)
from esante.audit.verification import verify_chain
from esante.tlog.models import LogLeaf
from esante.tlog.sequencer import SequencerRefused, sequence_batch, sequence_pending
from tests.tlog.test_sequencer import ESANTE, ROOT, _environment, assert_log_consistent


@pytest.fixture(autouse=True)
def batched(settings: Any) -> None:
    settings.AUDIT_CHAINING = "batched"
    heads: Path = settings.AUDIT_HEADS_FILE
    heads.unlink(missing_ok=True)
    settings.AUDIT_SIGNER_STATE_FILE.unlink(missing_ok=True)


def record(n: int, label: str = "tester") -> list[AuditEvent]:
    return [audit_record(action=AuditAction.LOGOUT, actor_label=label, details={"n": i}) for i in range(n)]


def _tamper(sql: str, params: list[object]) -> None:
    triggers.remove(connection)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
    finally:
        triggers.install(connection)


def assert_chained_once(total: int) -> None:
    """Every event chained, sequences 1..total without a gap, each linking to the one before."""
    assert not AuditEvent.objects.filter(sequence=None).exists()
    rows = list(AuditEvent.objects.order_by("sequence").values_list("sequence", "prev_hash", "hash"))
    assert [row[0] for row in rows] == list(range(1, total + 1))
    previous = GENESIS_HASH
    for _, prev_hash, digest in rows:
        assert prev_hash == previous
        previous = digest
    assert AuditChainHead.objects.values_list("sequence", "hash").get(pk=1) == (total, previous)


@pytest.mark.django_db
def test_an_event_is_written_unchained_then_chained_as_inline_chaining_writes_it() -> None:
    at = datetime.datetime(2026, 12, 4, 10, 30, 15, 123456, tzinfo=datetime.UTC)
    details = {"n": 1, "ratio": 0.1, "nom": "Élodie", "list": [1, "deux"]}
    event = audit_record(
        action=AuditAction.AUDIT_READ,
        outcome=AuditOutcome.REFUSED,
        actor_label="dr. test",
        object_type="document",
        object_id=42,
        motif="consultation",
        client_address="10.0.0.7",
        details=details,
        at=at,
    )
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.sequence, stored.prev_hash, stored.hash, stored.canonical) == (None, None, None, None)
    fields = {
        "created_at": at,
        "actor_id": None,
        "actor_label": "dr. test",
        "action": AuditAction.AUDIT_READ,
        "outcome": AuditOutcome.REFUSED,
        "patient_id": None,
        "object_type": "document",
        "object_id": "42",
        "motif": "consultation",
        "client_address": "10.0.0.7",
        "details": details,
    }
    assert stored.mac == intake_mac(event.pk, content_text(_payload(sequence=0, prev_hash="", **fields)))
    (before,) = record(1)  # a second waiting event, written after: chained after it
    result = sequence_batch()
    assert result.added == 2
    stored = AuditEvent.objects.get(pk=event.pk)
    # Exactly what inline chaining would have stored at #1.
    canonical = canonical_bytes(_payload(sequence=1, prev_hash=GENESIS_HASH, **fields))
    assert stored.sequence == 1 and stored.prev_hash == GENESIS_HASH
    assert stored.canonical == canonical and stored.hash == _hash(canonical)
    assert stored.mac == event_mac(stored.hash)
    assert AuditEvent.objects.get(pk=before.pk).prev_hash == stored.hash
    assert_chained_once(2)
    assert assert_log_consistent() == 2
    verdict = verify_chain()
    assert verdict.ok and verdict.checked == 2 and verdict.pending == 0


@pytest.mark.django_db
def test_inline_and_batched_writes_make_one_chain(settings: Any) -> None:
    record(2)
    settings.AUDIT_CHAINING = "inline"
    inline = record(1)[0]
    assert inline.sequence == 1  # the head moves under its lock; the waiting two come after it
    settings.AUDIT_CHAINING = "batched"
    audit_record_many(action=AuditAction.LOGOUT, entries=[(None, {"k": i}) for i in range(3)])
    verdict = verify_chain()
    assert verdict.ok and verdict.checked == 1 and verdict.pending == 5
    assert sequence_pending() == 6
    assert_chained_once(6)
    assert verify_chain().ok and assert_log_consistent() == 6


@pytest.mark.django_db
def test_readers_show_the_waiting_events_first(django_user_model: Any, settings: Any) -> None:
    user = django_user_model.objects.create_user(username="lecteur", password="x")  # noqa: S106
    settings.AUDIT_CHAINING = "inline"
    for i in range(2):
        audit_record(action=AuditAction.LOGOUT, actor=user, details={"n": i})
    settings.AUDIT_CHAINING = "batched"
    waiting = audit_record(action=AuditAction.LOGOUT, actor=user, details={"n": 2})
    assert [event.pk for event in events_of_actor(user)][0] == waiting.pk
    assert [event.sequence for event in events_of_actor(user)] == [None, 2, 1]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("sql", "params"),
    [
        ("UPDATE audit_auditevent SET motif = 'changed' WHERE id = %s", []),
        ("UPDATE audit_auditevent SET details = '{\"n\": 9}' WHERE id = %s", []),
        ("UPDATE audit_auditevent SET mac = %s WHERE id = %s", ["0" * 64]),
    ],
)
def test_a_waiting_event_changed_is_refused_by_the_chainer_and_verify_audit(
    sql: str, params: list[Any]
) -> None:
    first, second, third = record(3)
    _tamper(sql, [*params, second.pk])
    with pytest.raises(SequencerRefused, match="intake MAC does not match") as refused:
        sequence_pending()
    assert f"id {second.pk}" in str(refused.value)
    # The event before it is chained and logged; it and the one after it wait.
    assert list(AuditEvent.objects.exclude(sequence=None).values_list("pk", flat=True)) == [first.pk]
    assert set(AuditEvent.objects.filter(sequence=None).values_list("pk", flat=True)) == {second.pk, third.pk}
    assert assert_log_consistent() == 1
    verdict = verify_chain()
    assert not verdict.ok and "intake MAC does not match" in verdict.problem
    with pytest.raises(ChainRefused):
        chain_pending()


@pytest.mark.django_db
def test_a_forged_waiting_event_is_refused() -> None:
    record(1)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audit_auditevent (created_at, actor_label, action, outcome, object_type, object_id, "
            "motif, details, mac) VALUES (%s, 'intrus', 'accounts.logout', 'success', '', '', '', '{}', %s)",
            [connection.ops.adapt_datetimefield_value(datetime.datetime.now(datetime.UTC)), "a" * 64],
        )
    with pytest.raises(SequencerRefused, match="intake MAC"):
        sequence_pending()
    assert AuditEvent.objects.exclude(sequence=None).count() == 1 and LogLeaf.objects.count() == 1


@pytest.mark.django_db
def test_a_copy_of_a_waiting_event_is_refused() -> None:
    (event,) = record(1)
    columns = ", ".join(triggers.CONTENT_COLUMNS[1:] + ("mac",))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO audit_auditevent ({columns}) SELECT {columns} FROM audit_auditevent WHERE id = %s",  # noqa: S608
            [event.pk],
        )
    with pytest.raises(SequencerRefused, match="intake MAC does not match"):
        sequence_pending()
    assert AuditEvent.objects.exclude(sequence=None).count() == 1


@pytest.mark.django_db
def test_the_triggers_allow_the_chaining_update_and_nothing_else() -> None:
    first, second = record(2)
    sequence_batch(limit=1)  # chains and logs the first
    chained, waiting = AuditEvent.objects.get(pk=first.pk), AuditEvent.objects.get(pk=second.pk)
    assert waiting.sequence is None and chained.sequence == 1
    refused = [
        # the content of a waiting event
        ("UPDATE audit_auditevent SET motif = 'x' WHERE id = %s", [waiting.pk]),
        # chaining it while changing its content
        ("UPDATE audit_auditevent SET sequence = 2, actor_label = 'x' WHERE id = %s", [waiting.pk]),
        # its intake MAC alone (it stays unchained)
        ("UPDATE audit_auditevent SET mac = %s WHERE id = %s", ["0" * 64, waiting.pk]),
        # re-chaining a chained event, unchaining it, changing it
        ("UPDATE audit_auditevent SET sequence = 7, hash = %s WHERE id = %s", ["f" * 64, chained.pk]),
        ("UPDATE audit_auditevent SET sequence = NULL WHERE id = %s", [chained.pk]),
        ("UPDATE audit_auditevent SET motif = 'x' WHERE id = %s", [chained.pk]),
        ("DELETE FROM audit_auditevent WHERE id = %s", [waiting.pk]),
        ("DELETE FROM audit_auditevent WHERE id = %s", [chained.pk]),
    ]
    for sql, params in refused:
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, params)
    assert AuditEvent.objects.get(pk=waiting.pk).sequence is None
    assert AuditEvent.objects.get(pk=chained.pk).hash == chained.hash
    assert sequence_pending() == 1
    assert_chained_once(2)
    assert verify_chain().ok


@pytest.mark.django_db
def test_without_the_mac_key_nothing_is_chained(settings: Any, tmp_path: Path) -> None:
    from esante.audit.keys import forget_mac_keys

    record(2)
    settings.AUDIT_MAC_KEY_FILE = tmp_path / "absent-mac-key"
    forget_mac_keys()
    try:
        with pytest.raises(SequencerRefused, match="intake MACs cannot be checked"):
            sequence_batch()
        assert verify_chain().missing_key
    finally:
        forget_mac_keys()
    assert not AuditEvent.objects.exclude(sequence=None).exists()
    assert not (tmp_path / "absent-mac-key").exists()


def test_concurrent_writers_and_sequencers_chain_each_event_once(committed_db: None) -> None:
    """Six writer threads (each its own connection) while two sequencers chain and log."""
    errors: list[BaseException] = []
    writing = threading.Event()

    def writer(worker: int) -> None:
        try:
            for i in range(40):
                with transaction.atomic():  # an action and its event, committed together
                    audit_record(action=AuditAction.LOGOUT, actor_label=f"w{worker}", details={"i": i})
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    def sequencer() -> None:
        try:
            while writing.is_set():
                sequence_pending(limit=25)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    writing.set()
    sequencers = [threading.Thread(target=sequencer) for _ in range(2)]
    writers = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for thread in sequencers + writers:
        thread.start()
    for thread in writers:
        thread.join(timeout=300)
    writing.clear()
    for thread in sequencers:
        thread.join(timeout=300)
    assert errors == []
    sequence_pending()
    assert_chained_once(240)
    labels = sorted(AuditEvent.objects.values_list("actor_label", "details"), key=str)
    assert labels == sorted(((f"w{w}", {"i": i}) for w in range(6) for i in range(40)), key=str)
    assert assert_log_consistent() == 240
    assert verify_chain().ok


def _kill_after_chaining(batches_before_kill: int) -> None:
    """Runs ``esante sequence_log``; SIGKILLs it as soon as batch number ``batches_before_kill``
    (from 1) has updated its events' chain columns, before the head, the leaves and the commit."""
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
            if line.startswith("chained events "):
                seen += 1
                if seen == batches_before_kill:
                    os.kill(process.pid, signal.SIGKILL)
                    break
    finally:
        process.wait(timeout=60)
        process.stdout.close()  # type: ignore[union-attr]
    assert process.returncode == -signal.SIGKILL


def test_a_chainer_killed_mid_batch_loses_and_duplicates_nothing(committed_db: None, settings: Any) -> None:
    settings.AUDIT_CHAINING = "batched"
    audit_record_many(action=AuditAction.LOGOUT, entries=[(None, {"n": i}) for i in range(8000)])
    with transaction.atomic():
        record(1000, label="one by one")
    sizes = []
    for batches in (1, 2, 1):
        before = AuditChainHead.objects.get(pk=1).sequence
        _kill_after_chaining(batches)
        chained = AuditChainHead.objects.get(pk=1).sequence
        # Batches before the one killed committed; the one killed may have reached its commit just
        # before the signal, never half of it: its events are all chained, or none.
        assert chained in (before + 2000 * (batches - 1), before + 2000 * batches)
        assert_chained_upto(chained)
        assert assert_log_consistent() == chained
        sizes.append(chained - before - 2000 * (batches - 1))
    assert 0 in sizes  # at least one kill landed inside a batch's transaction, and it left nothing
    result = subprocess.run(
        [ESANTE, "sequence_log", "--batch", "2000"],
        env=_environment(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert_chained_once(9000)
    assert assert_log_consistent() == 9000
    assert set(LogLeaf.objects.values_list("event_id", flat=True)) == set(
        AuditEvent.objects.values_list("id", flat=True)
    )
    assert verify_chain().ok


def assert_chained_upto(last: int) -> None:
    """Events #1..#last chained without a gap, the others all waiting."""
    sequences = list(
        AuditEvent.objects.exclude(sequence=None).order_by("sequence").values_list("sequence", flat=True)
    )
    assert sequences == list(range(1, last + 1))
    assert AuditEvent.objects.filter(sequence=None).count() == 9000 - last


@pytest.mark.django_db
def test_a_pass_with_nothing_waiting_chains_nothing(settings: Any) -> None:
    settings.AUDIT_CHAINING = "inline"
    record(2)
    assert chain_batch(limit=10).chained == 0
    assert verify_chain().ok


def test_serve_passes_at_the_chainers_interval_in_batched_mode(settings: Any) -> None:
    from esante.demo.serving import sequencing_interval

    settings.AUDIT_CHAIN_INTERVAL, settings.TLOG_SEQUENCE_INTERVAL = 0.2, 2.0
    assert sequencing_interval() == 0.2
    settings.AUDIT_CHAINING = "inline"
    assert sequencing_interval() == 2.0
