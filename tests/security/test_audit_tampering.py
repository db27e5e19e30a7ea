"""The audit trail as an attacker with write access to the database (and to the data volume)
sees it: each way of changing the trail behind the append-only triggers, and what
``esante verify_audit`` says about it.

Exit statuses: 0 intact and fully signed, 1 broken, 3 intact up to the last signed head only.
Tampering among signed events must read "BROKEN"; tampering after the last signed head can be
consistent enough to pass every check the database allows, so it must at least never read
"intact": those events are reported as unsigned (status 3).
"""

import base64
import datetime
import hashlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from esante.audit import triggers
from esante.audit.anchoring import AnchorRefused, audit_anchor
from esante.audit.catalogue import AuditAction
from esante.audit.models import AuditChainHead, AuditEvent
from esante.audit.services import audit_record, canonical_bytes
from esante.patients.models import Patient
from tests.access.factories import make_patient

INTACT, BROKEN, UNSIGNED = 0, 1, 3


@pytest.fixture(autouse=True)
def fresh_heads_files(settings: Any, tmp_path: Path) -> None:
    settings.AUDIT_HEADS_FILE = tmp_path / "heads.jsonl"
    settings.AUDIT_HEADS_COPY_FILES = []
    settings.AUDIT_WITNESS_URL = ""


@pytest.fixture
def patients(db: Any) -> list[Patient]:
    return [make_patient(), make_patient(birth_name="Wolf", first_names="Danny")]


def record(n: int, patient: Patient | None = None) -> None:
    for i in range(n):
        audit_record(
            action=AuditAction.RECORD_OPEN,
            actor_label="1980010000001",
            patient=patient,
            object_type="patient",
            object_id=str(patient.pk) if patient else "",
            motif="Soins",
            client_address="192.0.2.10",
            details={"n": i},
        )


def verify(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("verify_audit", *args, verbosity=0, stdout=out)
    except CommandError as exc:
        return exc.returncode, str(exc)
    return INTACT, out.getvalue()


def tamper(sql: str, params: list[object] | None = None) -> None:
    """Changes the table behind the triggers' back, as someone with database access could."""
    triggers.remove(connection)
    try:
        with connection.cursor() as cur:
            cur.execute(sql, params or [])
    finally:
        triggers.install(connection)


def forge(content: dict[str, Any]) -> tuple[str, str]:
    text = canonical_bytes(content)
    return text, hashlib.sha256(text.encode()).hexdigest()


def rewrite(sequence: int, change: dict[str, Any], *, rehash_after: bool, move_head: bool) -> None:
    """Rewrites event ``sequence`` with a correct hash of its new content; with ``rehash_after``,
    re-links every later event too, so the whole chain is consistent again."""
    rows = list(
        AuditEvent.objects.filter(sequence__gte=sequence)
        .order_by("sequence")
        .values_list("sequence", "canonical", "prev_hash")
    )
    prev = rows[0][2]
    for seq, canonical, _ in rows if rehash_after else rows[:1]:
        content = json.loads(canonical)
        if seq == sequence:
            content.update(change)
        content["prev"] = prev
        text, digest = forge(content)
        tamper(
            "UPDATE audit_auditevent SET canonical=%s, prev_hash=%s, hash=%s, details=%s, motif=%s "
            "WHERE sequence=%s",
            [text, prev, digest, json.dumps(content["details"]), content["motif"], seq],
        )
        prev = digest
    if move_head:
        AuditChainHead.objects.filter(pk=1).update(sequence=rows[-1][0], hash=prev)


def insert_forged(sequence: int, prev: str) -> str:
    """Inserts a well-formed event #sequence linked to ``prev``; returns its hash."""
    at = datetime.datetime(2026, 1, 5, 10, 0, tzinfo=datetime.UTC)
    content = {
        "seq": sequence,
        "time": at.isoformat(),
        "actor": None,
        "actor_label": "intrus",
        "action": "record.open",
        "outcome": "success",
        "patient": None,
        "object_type": "",
        "object_id": "",
        "motif": "Soins",
        "client_address": None,
        "details": {},
        "prev": prev,
    }
    text, digest = forge(content)
    AuditEvent.objects.create(
        sequence=sequence,
        created_at=at,
        actor_label="intrus",
        action="record.open",
        outcome="success",
        motif="Soins",
        canonical=text,
        prev_hash=prev,
        hash=digest,
    )
    return digest


def event_hash(sequence: int) -> str:
    return AuditEvent.objects.values_list("hash", flat=True).get(sequence=sequence)


def signed_trail() -> None:
    """Six events, all covered by a signed head (#6)."""
    record(6)
    assert audit_anchor() is not None


def trail_with_unsigned_tail() -> None:
    """Six events, the head signed at #4: events #5 and #6 wait for the signer."""
    record(4)
    audit_anchor()
    record(2)


# --- the baseline -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_untouched_signed_trail_is_intact() -> None:
    signed_trail()
    status, message = verify()
    assert status == INTACT
    assert "intact: 6 events, all covered by the last signed head #6" in message


@pytest.mark.django_db
def test_untouched_unsigned_tail_is_not_called_intact() -> None:
    trail_with_unsigned_tail()
    status, message = verify()
    assert status == UNSIGNED
    assert "UNSIGNED TAIL" in message and "2 events after the last signed head #4" in message
    assert "(#5 to #6)" in message and "intact" not in message


# --- tampering among signed events: BROKEN ------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("action", "document.read"),
        ("actor_label", "quelqu'un"),
        ("outcome", "refused"),
        ("motif", "autre motif"),
        ("details", '{"n": 42}'),
        ("created_at", "2020-01-01 00:00:00"),
        ("client_address", "10.0.0.9"),
        ("object_id", "999"),
        ("patient", None),
    ],
)
@pytest.mark.django_db
def test_a_changed_column_is_found(column: str, value: object, patients: list[Patient]) -> None:
    record(6, patient=patients[0])
    audit_anchor()
    if column == "patient":
        column, value = "patient_id", patients[1].pk
    tamper(f"UPDATE audit_auditevent SET {column} = %s WHERE sequence = 3", [value])  # noqa: S608
    status, message = verify()
    assert status == BROKEN
    assert "BROKEN at event #3: its columns differ from its hashed content" in message


@pytest.mark.django_db
def test_changed_canonical_bytes_are_found() -> None:
    signed_trail()
    canonical = AuditEvent.objects.get(sequence=2).canonical
    tamper(
        "UPDATE audit_auditevent SET canonical = %s WHERE sequence = 2", [canonical.replace('"n":1', '"n":7')]
    )
    status, message = verify()
    assert (status, "BROKEN at event #2: its hash does not match its content" in message) == (BROKEN, True)


@pytest.mark.django_db
def test_one_rehashed_event_breaks_the_link_of_the_next() -> None:
    signed_trail()
    rewrite(3, {"motif": "Urgence"}, rehash_after=False, move_head=False)
    status, message = verify()
    assert status == BROKEN
    assert "BROKEN at event #4: it does not link to the previous event's hash" in message


@pytest.mark.django_db
def test_a_consistently_rehashed_chain_differs_from_its_signed_head() -> None:
    signed_trail()
    rewrite(3, {"motif": "Urgence"}, rehash_after=True, move_head=True)
    status, message = verify()
    assert status == BROKEN
    assert "BROKEN at event #6: it differs from the head signed at" in message


@pytest.mark.parametrize("sequence", [1, 3])
@pytest.mark.django_db
def test_a_deleted_event_is_found(sequence: int) -> None:
    signed_trail()
    tamper("DELETE FROM audit_auditevent WHERE sequence = %s", [sequence])
    status, message = verify()
    assert status == BROKEN
    assert f"BROKEN at event #{sequence}: the event is missing" in message


@pytest.mark.django_db
def test_an_event_inserted_in_the_middle_is_found() -> None:
    signed_trail()
    # Make room at #3 (two steps: the sequence is unique), then insert a forged #3 after #2.
    tamper("UPDATE audit_auditevent SET sequence = sequence + 100 WHERE sequence >= 3")
    tamper("UPDATE audit_auditevent SET sequence = sequence - 99 WHERE sequence >= 103")
    insert_forged(3, event_hash(2))
    status, message = verify()
    assert status == BROKEN
    assert "BROKEN at event #4: it does not link to the previous event's hash" in message


@pytest.mark.django_db
def test_swapped_events_are_found() -> None:
    signed_trail()
    tamper("UPDATE audit_auditevent SET sequence = 100 WHERE sequence = 2")
    tamper("UPDATE audit_auditevent SET sequence = 2 WHERE sequence = 3")
    tamper("UPDATE audit_auditevent SET sequence = 3 WHERE sequence = 100")
    status, message = verify()
    assert status == BROKEN and "BROKEN at event #2: it does not link" in message


@pytest.mark.parametrize("keep", [4, 0])
@pytest.mark.django_db
def test_a_truncated_signed_trail_is_found(keep: int) -> None:
    """Deleting signed events (here the last two, or all of them) even with the head row reset."""
    signed_trail()
    tamper("DELETE FROM audit_auditevent WHERE sequence > %s", [keep])
    AuditChainHead.objects.filter(pk=1).update(sequence=keep, hash=event_hash(keep) if keep else "0" * 64)
    status, message = verify()
    assert status == BROKEN
    assert f"BROKEN at event #{keep + 1}: the trail ends at event #{keep} but a head was signed" in message
    assert "events were removed" in message


@pytest.mark.django_db
def test_a_replaced_head_row_is_found() -> None:
    signed_trail()
    AuditChainHead.objects.filter(pk=1).update(hash="e" * 64)
    status, message = verify()
    assert status == BROKEN and "differs from the chain head row" in message


# --- tampering after the last signed head: never "intact" (issue 10, finding 2) -----------------


@pytest.mark.django_db
def test_deleted_unsigned_events_are_not_called_intact() -> None:
    trail_with_unsigned_tail()
    tamper("DELETE FROM audit_auditevent WHERE sequence = 6")
    status, message = verify()
    assert status == BROKEN
    assert "the trail ends at event #5 but the chain head row says #6: events were removed" in message
    # With the head row moved back too, the database holds no trace; the rest is still unsigned.
    AuditChainHead.objects.filter(pk=1).update(sequence=5, hash=event_hash(5))
    status, message = verify()
    assert status == UNSIGNED and "1 events after the last signed head #4" in message


@pytest.mark.django_db
def test_a_rewritten_and_rehashed_unsigned_event_is_not_called_intact() -> None:
    trail_with_unsigned_tail()
    rewrite(6, {"motif": "Urgence"}, rehash_after=True, move_head=False)
    status, message = verify()
    assert status == BROKEN and "BROKEN at event #6: it differs from the chain head row" in message
    AuditChainHead.objects.filter(pk=1).update(hash=event_hash(6))
    status, message = verify()
    assert status == UNSIGNED and "2 events after the last signed head #4" in message


@pytest.mark.django_db
def test_a_forged_event_chaining_after_the_last_head_is_not_called_intact() -> None:
    signed_trail()
    digest = insert_forged(7, event_hash(6))
    status, message = verify()
    assert status == BROKEN and "event #7 lies beyond the chain head #6" in message
    AuditChainHead.objects.filter(pk=1).update(sequence=7, hash=digest)
    status, message = verify()
    assert status == UNSIGNED
    assert "1 events after the last signed head #6" in message and "(#7 to #7)" in message


@pytest.mark.django_db
def test_the_signer_refuses_to_sign_over_a_broken_tail() -> None:
    trail_with_unsigned_tail()
    tamper("UPDATE audit_auditevent SET motif = 'x' WHERE sequence = 6")
    with pytest.raises(AnchorRefused, match=r"not signing head #6: event #6: its columns differ"):
        audit_anchor()
    with pytest.raises(CommandError, match="not signing head #6"):
        call_command("anchor_audit", stdout=io.StringIO())
    assert verify()[0] == BROKEN


# --- the heads files ----------------------------------------------------------------------------


def heads_lines() -> list[str]:
    return Path(settings.AUDIT_HEADS_FILE).read_text().splitlines(keepends=True)


def two_heads() -> None:
    record(4)
    audit_anchor()
    record(2)
    audit_anchor()
    assert len(heads_lines()) == 2


@pytest.mark.django_db
def test_removing_the_last_heads_line_leaves_an_unsigned_tail() -> None:
    two_heads()
    Path(settings.AUDIT_HEADS_FILE).write_text(heads_lines()[0])
    status, message = verify()
    assert status == UNSIGNED and "2 events after the last signed head #4" in message


@pytest.mark.django_db
def test_a_removed_heads_file_leaves_everything_unsigned() -> None:
    two_heads()
    Path(settings.AUDIT_HEADS_FILE).unlink()
    status, message = verify()
    assert status == UNSIGNED and "6 events after the start: no head is signed yet" in message


@pytest.mark.django_db
def test_reordered_heads_lines_are_found() -> None:
    two_heads()
    first, second = heads_lines()
    Path(settings.AUDIT_HEADS_FILE).write_text(second + first)
    status, message = verify()
    assert status == BROKEN and "lines were reordered or replaced" in message


@pytest.mark.django_db
def test_a_forged_head_signature_is_refused() -> None:
    signed_trail()
    line = json.loads(heads_lines()[0])
    line["hash"] = "f" * 64
    Path(settings.AUDIT_HEADS_FILE).write_text(json.dumps(line) + "\n")
    status, message = verify()
    assert status == BROKEN and "heads file line 1: signature does not verify" in message


@pytest.mark.django_db
def test_a_head_signed_with_another_key_is_refused() -> None:
    """Whoever rewrites the chain and signs its new head with a key of their own."""
    signed_trail()
    rewrite(3, {"motif": "Urgence"}, rehash_after=True, move_head=True)
    head = AuditChainHead.objects.get(pk=1)
    signed_at = datetime.datetime.now(datetime.UTC).isoformat()
    message_bytes = f"esante-audit-head:{head.sequence}:{head.hash}:{signed_at}".encode()

    signature = base64.b64encode(Ed25519PrivateKey.generate().sign(message_bytes)).decode()
    forged = {"seq": head.sequence, "hash": head.hash, "signed_at": signed_at, "sig": signature}
    Path(settings.AUDIT_HEADS_FILE).write_text(json.dumps(forged) + "\n")
    status, message = verify()
    assert status == BROKEN and "signature does not verify" in message


@pytest.mark.django_db
def test_the_copy_is_written_with_the_heads_file_and_must_agree(settings: Any, tmp_path: Path) -> None:
    copy = tmp_path / "other-volume" / "heads.jsonl"
    settings.AUDIT_HEADS_COPY_FILES = [copy]
    two_heads()
    assert copy.read_text() == Path(settings.AUDIT_HEADS_FILE).read_text()
    status, message = verify()
    assert status == INTACT and "against 1 copies of the heads file" in message
    # The attacker on the database host hides the last head (and the events it covers):
    Path(settings.AUDIT_HEADS_FILE).write_text(heads_lines()[0])
    status, message = verify()
    assert status == BROKEN
    assert "the heads files disagree: head #6" in message and f"is in {copy} but not in" in message
    # ... and lets the signer sign the same head again: the copy still holds the first signature.
    audit_anchor()
    assert len(heads_lines()) == 2 and len(copy.read_text().splitlines()) == 3
    status, message = verify()
    assert status == BROKEN
    assert "the heads files disagree: head #6" in message and f"is in {copy} but not in" in message


@pytest.mark.django_db
def test_verify_audit_checks_a_copy_given_on_the_command_line(tmp_path: Path) -> None:
    two_heads()
    backup = tmp_path / "backup-heads.jsonl"
    shutil.copy(settings.AUDIT_HEADS_FILE, backup)
    assert verify("--heads", str(backup))[0] == INTACT
    backup.write_text(heads_lines()[0])  # a copy that lost a head
    status, message = verify("--heads", str(backup))
    assert status == BROKEN and "head #6" in message and f"but not in {backup}" in message
    status, message = verify("--heads", str(tmp_path / "missing.jsonl"))
    assert status == BROKEN and "missing.jsonl does not exist" in message
