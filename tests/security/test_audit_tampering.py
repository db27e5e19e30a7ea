"""The audit trail as an attacker with write access to the database (and to the data volume)
sees it: each way of changing the trail behind the append-only triggers, and what
``esante verify_audit`` says about it.

Exit statuses: 0 intact and fully signed, 1 broken, 3 intact up to the last signed head only,
4 a copy of the heads file lags, 5 no key to verify with. Tampering among signed events must read
"BROKEN". After the last signed head, every event carries a MAC keyed outside the database, so an
event forged or rewritten with database access alone reads "BROKEN" too; one who also holds the
MAC key can forge a consistent tail, which must at least never read "intact": those events are
reported as unsigned (status 3).
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
from esante.audit.keys import event_mac
from esante.audit.models import AuditChainHead, AuditEvent
from esante.audit.services import audit_record, canonical_bytes
from esante.patients.models import Patient
from tests.access.factories import make_patient

INTACT, BROKEN, UNSIGNED, LAGGING = 0, 1, 3, 4


@pytest.fixture(autouse=True)
def fresh_heads_files(settings: Any, tmp_path: Path) -> None:
    settings.AUDIT_HEADS_FILE = tmp_path / "heads.jsonl"
    settings.AUDIT_SIGNER_STATE_FILE = tmp_path / "signer-state.json"
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


def rewrite(
    sequence: int, change: dict[str, Any], *, rehash_after: bool, move_head: bool, with_mac_key: bool = False
) -> None:
    """Rewrites event ``sequence`` with a correct hash of its new content; with ``rehash_after``,
    re-links every later event too, so the whole chain is consistent again. ``with_mac_key``: the
    attacker also holds the MAC key (off the database) and writes valid MACs."""
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
        if with_mac_key:
            tamper("UPDATE audit_auditevent SET mac=%s WHERE sequence=%s", [event_mac(digest), seq])
        prev = digest
    if move_head:
        AuditChainHead.objects.filter(pk=1).update(sequence=rows[-1][0], hash=prev)


def insert_forged(sequence: int, prev: str, *, with_mac_key: bool = False) -> str:
    """Inserts a well-formed event #sequence linked to ``prev``, without a MAC as one with database
    access only would (``with_mac_key``: with a valid MAC); returns its hash."""
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
        mac=event_mac(digest) if with_mac_key else None,
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
def test_one_rehashed_event_has_no_valid_mac_and_breaks_the_link_of_the_next() -> None:
    signed_trail()
    rewrite(3, {"motif": "Urgence"}, rehash_after=False, move_head=False)
    status, message = verify()
    assert status == BROKEN
    assert "BROKEN at event #3: its MAC does not match" in message
    rewrite(3, {"motif": "Urgence"}, rehash_after=False, move_head=False, with_mac_key=True)
    status, message = verify()
    assert status == BROKEN
    assert "BROKEN at event #4: it does not link to the previous event's hash" in message


@pytest.mark.django_db
def test_a_consistently_rehashed_chain_differs_from_its_signed_head() -> None:
    signed_trail()
    rewrite(3, {"motif": "Urgence"}, rehash_after=True, move_head=True)
    status, message = verify()
    assert status == BROKEN and "BROKEN at event #3: its MAC does not match" in message
    # Even with the MAC key, the rewritten chain no longer ends in the signed head.
    rewrite(3, {"motif": "Urgence"}, rehash_after=True, move_head=True, with_mac_key=True)
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
    assert "BROKEN at event #3: it has no MAC although earlier events have one" in message


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
    assert status == BROKEN and "BROKEN at event #6: its MAC does not match" in message
    # One who also holds the MAC key: consistent, so at best unsigned.
    rewrite(6, {"motif": "Urgence"}, rehash_after=True, move_head=False, with_mac_key=True)
    status, message = verify()
    assert status == BROKEN and "BROKEN at event #6: it differs from the chain head row" in message
    AuditChainHead.objects.filter(pk=1).update(hash=event_hash(6))
    status, message = verify()
    assert status == UNSIGNED and "2 events after the last signed head #4" in message


@pytest.mark.django_db
def test_a_forged_event_chaining_after_the_last_head_is_broken_and_never_signed() -> None:
    """Issue 10 review: the chain hash has no key, so a forged event that chains correctly was
    signed. Without the MAC key it has no valid MAC: BROKEN, and the signer refuses it."""
    signed_trail()
    digest = insert_forged(7, event_hash(6))
    status, message = verify()
    assert status == BROKEN and "event #7 lies beyond the chain head #6" in message
    AuditChainHead.objects.filter(pk=1).update(sequence=7, hash=digest)
    status, message = verify()
    assert (
        status == BROKEN and "BROKEN at event #7: it has no MAC although earlier events have one" in message
    )
    with pytest.raises(AnchorRefused, match="not signing head #7: event #7: it has no MAC"):
        audit_anchor()
    assert heads_lines() == heads_lines()[:1]  # nothing signed
    # A MAC made up without the key is no better.
    tamper("UPDATE audit_auditevent SET mac = %s WHERE sequence = 7", ["0" * 64])
    status, message = verify()
    assert status == BROKEN and "BROKEN at event #7: its MAC does not match" in message
    with pytest.raises(AnchorRefused, match="event #7: its MAC does not match"):
        audit_anchor(initial=True)


@pytest.mark.django_db
def test_a_forged_event_with_the_mac_key_is_at_best_unsigned() -> None:
    """The limit: one who holds the MAC key as well forges a consistent tail; never "intact"."""
    signed_trail()
    digest = insert_forged(7, event_hash(6), with_mac_key=True)
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
    # The refusal is audited (after the tampered event: the chain stays broken at #6).
    refusal = AuditEvent.objects.get(sequence=7)
    assert (refusal.action, refusal.outcome) == ("audit.anchor_refused", "refused")
    assert "event #6: its columns differ" in refusal.details["reason"]
    with pytest.raises(CommandError, match=r"not signing head #7: event #6"):
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


def state_file() -> Path:
    return Path(settings.AUDIT_SIGNER_STATE_FILE)


@pytest.mark.django_db
def test_removing_the_last_heads_line_is_found_by_the_signers_state() -> None:
    two_heads()
    Path(settings.AUDIT_HEADS_FILE).write_text(heads_lines()[0])
    status, message = verify()
    assert status == BROKEN and "the heads file is behind the signer's state" in message
    assert "head #6 was signed, the heads file's last head is #4" in message
    # With the signer's state removed as well, only the copies and the witness would tell.
    state_file().unlink()
    status, message = verify()
    assert status == UNSIGNED and "2 events after the last signed head #4" in message


@pytest.mark.django_db
def test_a_removed_heads_file_is_found_by_the_signers_state() -> None:
    two_heads()
    Path(settings.AUDIT_HEADS_FILE).unlink()
    status, message = verify()
    assert status == BROKEN and "head #6 was signed, the heads file's last head is #0" in message
    state_file().unlink()
    status, message = verify()
    assert status == UNSIGNED and "6 events after the start: no head is signed yet" in message


def rewrite_first_event_with_mac_key() -> None:
    """The review's scenario (with valid MACs, so that only the heads stand in the way): event #1
    rewritten, the whole chain re-hashed and the head row moved."""
    rewrite(1, {"motif": "rewritten"}, rehash_after=True, move_head=True, with_mac_key=True)


@pytest.mark.parametrize("cut", ["empty", "last line"])
@pytest.mark.django_db
def test_the_signer_does_not_re_sign_a_rewritten_history_after_the_heads_file_is_cut(
    cut: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 10 review: rewrite #1, re-hash, empty the heads file (or cut its last line): verify
    said "unsigned", and one audit_anchor() later "intact". The signer's state now refuses."""
    two_heads()
    rewrite_first_event_with_mac_key()
    Path(settings.AUDIT_HEADS_FILE).write_text("" if cut == "empty" else heads_lines()[0])
    for attempt in range(2):
        with pytest.raises(AnchorRefused, match="the heads file is behind this signer's state"):
            audit_anchor()
        with pytest.raises(CommandError, match="behind this signer's state"):
            call_command("anchor_audit", "--initial", stdout=io.StringIO())  # --initial does not help
        refusals = [r for r in caplog.records if r.levelname == "ERROR" and "REFUSED" in r.getMessage()]
        assert len(refusals) == 2 * (attempt + 1)  # every refusal logged, none de-duplicated
    assert len(heads_lines()) == (0 if cut == "empty" else 1)  # nothing signed
    audited = AuditEvent.objects.filter(action="audit.anchor_refused", outcome="refused")
    assert audited.count() == 4
    assert verify()[0] == BROKEN


@pytest.mark.django_db
def test_a_heads_file_behind_its_copy_is_not_signed_over(settings: Any, tmp_path: Path) -> None:
    copy = tmp_path / "other-volume" / "heads.jsonl"
    settings.AUDIT_HEADS_COPY_FILES = [copy]
    two_heads()
    rewrite_first_event_with_mac_key()
    Path(settings.AUDIT_HEADS_FILE).write_text("")
    state_file().unlink()  # the attacker on the data volume removes the signer's state too
    with pytest.raises(
        AnchorRefused, match=r"behind its copy .*other-volume/heads.jsonl \(which holds head #6"
    ):
        audit_anchor(initial=True)
    assert heads_lines() == [] and len(copy.read_text().splitlines()) == 2


@pytest.mark.django_db
def test_a_first_head_over_a_long_trail_needs_initial(settings: Any) -> None:
    settings.AUDIT_INITIAL_MAX_EVENTS = 5
    record(5)
    assert audit_anchor() is not None  # a tiny trail (a fresh install, the demo): signed
    Path(settings.AUDIT_HEADS_FILE).unlink()
    state_file().unlink()  # heads and state both gone: the signer has nothing to compare with
    record(1)
    with pytest.raises(AnchorRefused, match=r"first head over 6 events .* `esante anchor_audit --initial`"):
        audit_anchor()
    assert not Path(settings.AUDIT_HEADS_FILE).exists() or heads_lines() == []
    out = io.StringIO()
    call_command("anchor_audit", "--initial", stdout=out)
    assert "anchored head #7" in out.getvalue()  # 6 events and the refusal's own event
    assert verify()[0] == INTACT


@pytest.mark.django_db
def test_a_missing_state_file_with_heads_needs_initial() -> None:
    two_heads()
    state_file().unlink()
    record(1)
    with pytest.raises(
        AnchorRefused, match="the signer's state file .* is missing while the heads file holds"
    ):
        audit_anchor()
    head = audit_anchor(initial=True)
    assert head is not None and head.sequence == 8 and state_file().exists()
    record(1)
    assert audit_anchor() is not None  # from now on the state agrees
    assert verify()[0] == INTACT


@pytest.mark.django_db
def test_legacy_events_without_mac_are_counted_and_signed_only_with_initial() -> None:
    """Events written before the MAC column existed (NULL): verify counts them as legacy; the
    signer signs them only when told to; events written after them carry a MAC."""
    record(3)
    tamper("UPDATE audit_auditevent SET mac = NULL")
    status, message = verify()
    assert status == UNSIGNED and "3 of them legacy, unkeyed events" in message
    with pytest.raises(AnchorRefused, match="event #1: it has no MAC .*--initial"):
        audit_anchor()
    assert audit_anchor(initial=True) is not None  # signs #4 (the refusal's own event, keyed) too
    record(1)
    assert audit_anchor() is not None
    status, message = verify()
    assert status == INTACT and "intact: 5 events" in message and "3 of them legacy, unkeyed" in message
    assert AuditEvent.objects.filter(mac=None).count() == 3


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
    # The attacker on the database host hides the last head (and the events it covers), and the
    # signer's state too:
    Path(settings.AUDIT_HEADS_FILE).write_text(heads_lines()[0])
    state_file().unlink()
    status, message = verify()
    assert status == BROKEN
    assert "the heads files disagree: head #6" in message and f"is in {copy} but not in" in message
    # ... and asks the signer to sign the same head again: refused, the copy holds head #6.
    with pytest.raises(AnchorRefused, match="behind its copy"):
        audit_anchor(initial=True)
    assert len(heads_lines()) == 1 and len(copy.read_text().splitlines()) == 2


def _signed_line(sequence: int, digest: str, signed_at: str) -> str:
    from esante.audit.keys import load_or_create_signing_key

    signature = load_or_create_signing_key().sign(
        f"esante-audit-head:{sequence}:{digest}:{signed_at}".encode()
    )
    record = {
        "seq": sequence,
        "hash": digest,
        "signed_at": signed_at,
        "sig": base64.b64encode(signature).decode(),
    }
    return json.dumps(record, sort_keys=True) + "\n"


@pytest.mark.django_db
def test_verify_audit_checks_a_copy_given_on_the_command_line(tmp_path: Path) -> None:
    two_heads()
    backup = tmp_path / "backup-heads.jsonl"
    shutil.copy(settings.AUDIT_HEADS_FILE, backup)
    assert verify("--heads", str(backup))[0] == INTACT
    # A copy that holds only the first heads lags (its volume was away): its own status and line.
    backup.write_text(heads_lines()[0])
    status, message = verify("--heads", str(backup))
    assert status == LAGGING and "audit trail intact: 6 events" in message
    assert (
        f"heads file copy LAGGING: the copy {backup} holds the heads up to #4, the heads file up to #6"
        in message
    )
    status, message = verify("--heads", str(tmp_path / "missing.jsonl"))
    assert status == LAGGING and "missing.jsonl does not exist" in message
    # A copy with a head the heads file lacks, or another head at the same sequence: BROKEN.
    first, second = heads_lines()
    backup.write_text(first + second + _signed_line(7, "a" * 64, "2026-12-01T00:00:00+00:00"))
    status, message = verify("--heads", str(backup))
    assert status == BROKEN and f"head #7 (2026-12-01T00:00:00+00:00) is in {backup} but not in" in message
    head6 = json.loads(second)
    backup.write_text(first + _signed_line(6, head6["hash"], "2026-12-01T00:00:00+00:00"))
    status, message = verify("--heads", str(backup))
    assert status == BROKEN and "the heads files disagree: head #6" in message
