"""Anchoring the chain outside the database: signed heads in append-only files and at a witness.

The head (sequence, hash) is signed with an Ed25519 key kept outside the database and appended
as one JSON line to ``AUDIT_HEADS_FILE`` and to every ``AUDIT_HEADS_COPY_FILES`` (another volume,
another host's mount), each written and fsync'ed before the signature counts as made; when
``AUDIT_WITNESS_URL`` is set, the same line is POSTed there. Whoever rewrites or truncates the
table cannot produce a matching signature, so ``verify_audit`` finds it.

Events written after the last signed head are vouched for by nothing but the database itself:
``verify_audit`` reports them as unsigned, never as intact. To keep that stretch short, the signer
(``anchor_loop``, run by ``esante serve`` and ``esante anchor_audit --every``) signs as soon as
``AUDIT_ANCHOR_EVERY_EVENTS`` events are waiting, and at most ``AUDIT_ANCHOR_INTERVAL`` seconds
after a new event otherwise. Before signing it checks that the stretch since the last signed head
still chains from it and that each event in it carries a valid MAC (``audit.keys``), so it never
signs over a tampered tail or a forged event.

The signer keeps a small state file of its own next to its key (``AUDIT_SIGNER_STATE_FILE``): the
last head it signed and the last head the witness acknowledged. It refuses to sign (``AnchorRefused``,
logged and audited each time) when the heads file is behind that state, behind one of its copies,
or behind what the witness acknowledged: whoever empties or cuts the heads file cannot get a
rewritten history signed. A first head over a trail longer than ``AUDIT_INITIAL_MAX_EVENTS``
events, with no state to compare with, needs ``esante anchor_audit --initial``; so do legacy
events without a MAC (written before the MAC column existed).
"""

import base64
import datetime
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection

from .catalogue import AuditAction
from .chain import segment_problem
from .heads import (
    HeadsFileError,
    SignedHead,
    _append,
    _heads_lock,
    _message,
    _parse,
    heads_after,
    heads_copy_files,
    heads_read_lock,
    last_head,
    read_heads,
)
from .keys import load_or_create_signing_key, mac_key
from .models import AuditChainHead, AuditEvent
from .services import GENESIS_HASH, audit_record

logger = logging.getLogger("esante.audit")

WITNESS_TIMEOUT_SECONDS = 5.0


__all__ = [
    "AnchorRefused",
    "SignedHead",
    "SignerState",
    "WitnessError",
    "anchor_loop",
    "audit_anchor",
    "heads_after",
    "heads_copy_files",
    "heads_read_lock",
    "last_head",
    "read_heads",
    "read_signer_state",
    "HeadsFileError",
]


class AnchorRefused(Exception):
    """The current head cannot be signed: the chain since the last signed head is broken."""


class WitnessError(Exception):
    """The head was signed and written to the heads file, but a copy of the file (its volume
    away) or the witness did not take it: the head has not left the host everywhere it should."""


@dataclass(frozen=True)
class SignerState:
    """What this signer signed last and what the witness acknowledged last (its state file)."""

    sequence: int = 0
    hash: str = GENESIS_HASH
    witness_sequence: int = 0
    exists: bool = False


def read_signer_state(path: Path | None = None) -> SignerState:
    """The signer's state file; an empty state when there is none. Raises HeadsFileError when
    it cannot be read."""
    path = path or settings.AUDIT_SIGNER_STATE_FILE
    if not path.exists():
        return SignerState()
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        return SignerState(int(record["seq"]), str(record["hash"]), int(record.get("witness_seq", 0)), True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HeadsFileError(f"the audit signer's state file {path} is unreadable: {exc}") from exc


def _write_signer_state(state: SignerState) -> None:
    """Replaces the state file atomically (written, fsync'ed, renamed into place)."""
    path: Path = settings.AUDIT_SIGNER_STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    record = {"seq": state.sequence, "hash": state.hash, "witness_seq": state.witness_sequence}
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _push_to_witness(url: str, line: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise WitnessError(f"witness URL {url!r} is neither http nor https")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url, data=line.encode("utf-8"), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=WITNESS_TIMEOUT_SECONDS) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        raise WitnessError(f"the witness {url} did not take the signed head: {exc}") from exc
    if not 200 <= status < 300:
        raise WitnessError(f"the witness {url} answered {status}")


def _catch_up_copies(last: SignedHead) -> None:
    """Appends to each copy the heads it lacks at its end (a copy's volume was away when they
    were signed). Only appends lines that follow the copy's own last head: a copy that holds a
    head the heads file lacks stays as it is (the signer then refuses to sign, ``verify_audit``
    reports it)."""
    for copy in heads_copy_files():
        try:
            copy_last = last_head(copy)
            if copy_last is not None and copy_last.sequence >= last.sequence:
                continue
            missing = heads_after(copy_last.sequence if copy_last is not None else 0)
            if missing:
                _append(copy, "".join(missing))
        except (OSError, HeadsFileError):  # still away, or unreadable: signing goes on
            logger.exception("audit heads copy %s: cannot catch up", copy)


def _behind_problem(previous: SignedHead | None, state: SignerState) -> str:
    """Why the heads file is behind what was already signed (the signer's state, a copy, the
    witness's acknowledgement); "" when it is not."""
    signed = previous.sequence if previous is not None else 0
    where = f"its last head is #{signed}" if previous is not None else "it holds no head"
    if state.sequence > signed or (
        previous is not None and state.sequence == signed and state.exists and state.hash != previous.hash
    ):
        return (
            f"the heads file is behind this signer's state ({settings.AUDIT_SIGNER_STATE_FILE}: head "
            f"#{state.sequence} {state.hash} was signed, {where}): lines were removed or replaced"
        )
    if state.witness_sequence > signed:
        return (
            f"the heads file is behind the witness, which acknowledged head #{state.witness_sequence} "
            f"({where}): lines were removed"
        )
    for copy in heads_copy_files():
        try:
            copy_last = last_head(copy)
        except (OSError, HeadsFileError):
            continue  # away or unreadable: verify_audit reports it
        if copy_last is not None and (
            copy_last.sequence > signed
            or (previous is not None and copy_last.sequence == signed and copy_last.hash != previous.hash)
        ):
            return (
                f"the heads file is behind its copy {copy} (which holds head #{copy_last.sequence}, "
                f"{where}): lines were removed or replaced"
            )
    return ""


def _sign_locked(initial: bool) -> tuple[SignedHead | None, list[str]]:
    """Under the heads lock: checks, signs and writes the head; returns it and the copies that
    did not take it."""
    previous = last_head()
    state = read_signer_state()
    if previous is not None:
        _catch_up_copies(previous)
    behind = _behind_problem(previous, state)
    if behind:
        raise AnchorRefused(f"not signing: {behind}")
    if previous is not None and not state.exists and not initial:
        raise AnchorRefused(
            f"not signing: the signer's state file {settings.AUDIT_SIGNER_STATE_FILE} is missing while "
            f"the heads file holds heads (last #{previous.sequence}): it was removed, or this key's signer "
            "never ran here; check the heads file against its copies, then `esante anchor_audit --initial`"
        )
    head = AuditChainHead.objects.get(pk=1)
    if previous is not None and previous.sequence == head.sequence and previous.hash == head.hash:
        if state.sequence < previous.sequence:
            _write_signer_state(replace(state, sequence=previous.sequence, hash=previous.hash))
        return previous, []
    if head.sequence == 0 and previous is None:
        return None, []
    if (
        previous is None
        and not state.exists
        and head.sequence > settings.AUDIT_INITIAL_MAX_EVENTS
        and not initial
    ):
        raise AnchorRefused(
            f"not signing a first head over {head.sequence} events already in the trail (more than "
            f"ESANTE_AUDIT_INITIAL_MAX_EVENTS = {settings.AUDIT_INITIAL_MAX_EVENTS}) with no signed head "
            "and no signer state to compare with: if the trail is the one you expect, sign it with "
            "`esante anchor_audit --initial`"
        )
    after, after_hash = (previous.sequence, previous.hash) if previous else (0, GENESIS_HASH)
    if head.sequence < after:
        raise AnchorRefused(
            f"the chain head #{head.sequence} is behind the last signed head #{after}: events were removed"
        )
    problem = segment_problem(
        after=after,
        after_hash=after_hash,
        upto=head.sequence,
        upto_hash=head.hash,
        key=mac_key(),
        allow_legacy=initial,
    )
    if problem:
        raise AnchorRefused(f"not signing head #{head.sequence}: {problem}")
    key = load_or_create_signing_key()
    signed_at = datetime.datetime.now(datetime.UTC).isoformat()
    signature = base64.b64encode(key.sign(_message(head.sequence, head.hash, signed_at))).decode()
    record = {"seq": head.sequence, "hash": head.hash, "signed_at": signed_at, "sig": signature}
    line = json.dumps(record, sort_keys=True) + "\n"
    _append(settings.AUDIT_HEADS_FILE, line)
    _write_signer_state(replace(state, sequence=head.sequence, hash=head.hash))
    failed: list[str] = []
    for copy in heads_copy_files():
        try:
            _append(copy, line)
        except OSError as exc:
            failed.append(f"{copy}: {exc}")
    return SignedHead(head.sequence, head.hash, signed_at, 0, signature), failed


def _catch_up_witness(url: str) -> None:
    """POSTs to the witness, in order, every head it has not acknowledged (it was down when they
    were signed), from the last acknowledged one kept in the signer's state. Raises WitnessError
    at the first it does not take; what it took so far stays acknowledged."""
    with _heads_lock():
        state = read_signer_state()
        missing = heads_after(state.witness_sequence)
    acknowledged = state.witness_sequence
    try:
        for line in missing:
            _push_to_witness(url, line)
            acknowledged = _parse(line, 0)[0].sequence
    finally:
        if acknowledged > state.witness_sequence:
            with _heads_lock():
                current = read_signer_state()
                if acknowledged > current.witness_sequence:
                    _write_signer_state(replace(current, witness_sequence=acknowledged))


def _record_refusal(reason: str) -> None:
    """Every refusal: an error in the log (never de-duplicated) and, when the database takes it,
    an audit event."""
    logger.error("audit anchoring REFUSED: %s", reason)
    try:
        audit_record(
            action=AuditAction.ANCHOR_REFUSED,
            outcome=AuditEvent.Outcome.REFUSED,
            actor_label="signataire",
            details={"reason": reason[:1000]},
        )
    except Exception:
        logger.exception("audit anchoring refusal could not be audited")


def audit_anchor(*, initial: bool = False) -> SignedHead | None:
    """Signs the current head and appends it to the heads files; skips when nothing changed.
    Then catches the witness (``AUDIT_WITNESS_URL``) up with every head it has not acknowledged.

    ``initial``: the operator vouches for the trail as it is (``esante anchor_audit --initial``):
    a first head over a trail of more than ``AUDIT_INITIAL_MAX_EVENTS`` events, or with no signer
    state, and legacy events without a MAC, may be signed. It never overrides the other refusals.

    Raises AnchorRefused (nothing signed; logged and audited) when the heads file is behind the
    signer's state, a copy or the witness, or when the events since the last signed head no
    longer chain from it or lack a valid MAC; and WitnessError when the head was written to the
    heads file but a copy (``AUDIT_HEADS_COPY_FILES``) or the witness did not take it.
    """
    try:
        with _heads_lock():
            head, failed = _sign_locked(initial)
    except AnchorRefused as exc:
        _record_refusal(str(exc))
        raise
    except HeadsFileError as exc:
        _record_refusal(str(exc))
        raise AnchorRefused(str(exc)) from exc
    if settings.AUDIT_WITNESS_URL and head is not None:
        _catch_up_witness(settings.AUDIT_WITNESS_URL)
    if failed and head is not None:
        raise WitnessError(f"head #{head.sequence} signed, but not written to {'; '.join(failed)}")
    return head


def anchor_loop(
    stop: threading.Event,
    *,
    interval: float,
    every_events: int,
    poll: float = 1.0,
    on_signed: Callable[[SignedHead], None] | None = None,
) -> None:
    """Signs the head until ``stop`` is set: once ``every_events`` events wait, or ``interval``
    seconds after the last signature when anything new waits. Polls the head row (one cheap
    query) every ``poll`` seconds; the appends themselves never wait for a signature.

    After a failure (a refusal, a copy or the witness that did not take the head), tries again
    every ``interval`` seconds, new events or not (so the witness catches up once it is back),
    and logs every failure."""
    try:
        signed = last_head()
    except HeadsFileError:  # audit_anchor reports it below
        signed = None
    signed_sequence = signed.sequence if signed else 0
    signed_clock = time.monotonic()
    retry_at = 0.0
    failing = False
    try:
        while not stop.wait(min(poll, interval)):
            try:
                now = time.monotonic()
                if now < retry_at:
                    continue
                current = AuditChainHead.objects.values_list("sequence", flat=True).get(pk=1)
                waiting = current != signed_sequence
                due = waiting and (
                    current - signed_sequence >= every_events or now - signed_clock >= interval
                )
                if not (due or failing):
                    continue
                try:
                    head = audit_anchor()
                except WitnessError:  # written to the files: counts as signed
                    written = last_head()
                    signed_sequence = written.sequence if written else signed_sequence
                    signed_clock = time.monotonic()
                    raise
                failing = False
                signed_clock = time.monotonic()
                if head is not None and head.sequence != signed_sequence and on_signed is not None:
                    on_signed(head)
                signed_sequence = head.sequence if head else 0
            except AnchorRefused:  # audit_anchor logged and audited it
                failing, retry_at = True, time.monotonic() + interval
            except WitnessError as exc:
                failing, retry_at = True, time.monotonic() + interval
                logger.error("audit anchoring failed: %s", exc)
            except Exception:
                failing, retry_at = True, time.monotonic() + interval
                logger.exception("audit anchoring failed")
            finally:
                close_old_connections()
    finally:
        connection.close()  # this thread's own connection
