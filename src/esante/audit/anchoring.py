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
still chains from it, so it never signs over a tampered tail.
"""

import base64
import contextlib
import datetime
import fcntl
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.db import close_old_connections, connection

from .chain import segment_problem
from .models import AuditChainHead
from .services import GENESIS_HASH

logger = logging.getLogger("esante.audit")

WITNESS_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class SignedHead:
    sequence: int
    hash: str
    signed_at: str
    line: int = field(compare=False)  # the line in the heads file; 0 when not counted
    signature: str = ""


class HeadsFileError(Exception):
    pass


class AnchorRefused(Exception):
    """The current head cannot be signed: the chain since the last signed head is broken."""


class WitnessError(Exception):
    """The head was signed and written to the heads file, but a copy of the file (its volume
    away) or the witness did not take it: the head has not left the host everywhere it should."""


def _message(sequence: int, digest: str, signed_at: str) -> bytes:
    return f"esante-audit-head:{sequence}:{digest}:{signed_at}".encode()


def load_or_create_key(path: Path | None = None) -> Ed25519PrivateKey:
    path = path or settings.AUDIT_SIGNING_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return loaded


def heads_copy_files() -> list[Path]:
    return [Path(p) for p in settings.AUDIT_HEADS_COPY_FILES]


def _parse(raw: str, number: int) -> tuple[SignedHead, bytes]:
    try:
        record = json.loads(raw)
        head = SignedHead(
            int(record["seq"]), str(record["hash"]), str(record["signed_at"]), number, str(record["sig"])
        )
        if datetime.datetime.fromisoformat(head.signed_at).tzinfo is None:
            raise ValueError("signed_at has no time zone")
        return head, base64.b64decode(record["sig"], validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        raise HeadsFileError(f"heads file line {number} is unreadable: {exc}") from exc


def read_heads(public_key: Ed25519PublicKey | None = None, path: Path | None = None) -> list[SignedHead]:
    """Reads a heads file (default ``AUDIT_HEADS_FILE``); with a public key, checks every signature.

    Raises HeadsFileError for an unreadable line, a signature that does not verify, or a line
    that goes back in the chain (lines are appended in order, under a lock).
    """
    path = path or settings.AUDIT_HEADS_FILE
    if not path.exists():
        return []
    heads: list[SignedHead] = []
    with path.open(encoding="utf-8") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            head, signature = _parse(raw, number)
            if public_key is not None:
                try:
                    public_key.verify(signature, _message(head.sequence, head.hash, head.signed_at))
                except InvalidSignature:
                    raise HeadsFileError(f"heads file line {number}: signature does not verify") from None
            # Sequences only grow (heads are appended under a lock); times are not compared, as
            # signers on two hosts sharing one file may disagree on the clock.
            if heads and (
                head.sequence < heads[-1].sequence
                or (head.sequence == heads[-1].sequence and head.hash != heads[-1].hash)
            ):
                raise HeadsFileError(
                    f"heads file line {number}: head #{head.sequence} ({head.signed_at}) comes after "
                    f"head #{heads[-1].sequence} ({heads[-1].signed_at}): lines were reordered or replaced"
                )
            heads.append(head)
    return heads


def last_head(path: Path | None = None) -> SignedHead | None:
    """The last line of a heads file, read from its end (the file grows for ever)."""
    path = path or settings.AUDIT_HEADS_FILE
    if not path.exists():
        return None
    with path.open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - 4096))
        lines = [line for line in fh.read().splitlines() if line.strip()]
    if not lines:
        return None
    head, _ = _parse(lines[-1].decode("utf-8", errors="replace"), 0)
    return head


@contextlib.contextmanager
def _heads_lock() -> Iterator[None]:
    """One signer at a time on this host (``serve`` and ``anchor_audit --every`` may both run)."""
    path: Path = settings.AUDIT_HEADS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(path.name + ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _append(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


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
    head the heads file lacks stays as it is, for ``verify_audit`` to report."""
    primary: Path = settings.AUDIT_HEADS_FILE
    for copy in heads_copy_files():
        try:
            copy_last = last_head(copy)
            if copy_last is not None and copy_last.sequence >= last.sequence:
                continue
            after = copy_last.sequence if copy_last is not None else 0
            with primary.open(encoding="utf-8") as fh:
                missing = [raw for raw in fh if raw.strip() and _parse(raw, 0)[0].sequence > after]
            _append(copy, "".join(missing))
        except (OSError, HeadsFileError):  # still away, or unreadable: signing goes on
            logger.exception("audit heads copy %s: cannot catch up", copy)


def audit_anchor() -> SignedHead | None:
    """Signs the current head and appends it to the heads files; skips when nothing changed.

    Raises AnchorRefused (nothing signed) when the events since the last signed head no longer
    chain from it, and WitnessError when the head was written to the heads file but a copy
    (``AUDIT_HEADS_COPY_FILES``) or the witness (``AUDIT_WITNESS_URL``) did not take it.
    """
    with _heads_lock():
        previous = last_head()
        if previous is not None:
            _catch_up_copies(previous)
        head = AuditChainHead.objects.get(pk=1)
        if head.sequence == 0 and previous is None:
            return None
        if previous is not None and previous.sequence == head.sequence and previous.hash == head.hash:
            return previous
        after, after_hash = (previous.sequence, previous.hash) if previous else (0, GENESIS_HASH)
        if head.sequence < after:
            raise AnchorRefused(
                f"the chain head #{head.sequence} is behind the last signed head #{after}: "
                "events were removed"
            )
        problem = segment_problem(after=after, after_hash=after_hash, upto=head.sequence, upto_hash=head.hash)
        if problem:
            raise AnchorRefused(f"not signing head #{head.sequence}: {problem}")
        key = load_or_create_key()
        signed_at = datetime.datetime.now(datetime.UTC).isoformat()
        signature = base64.b64encode(key.sign(_message(head.sequence, head.hash, signed_at))).decode()
        record = {"seq": head.sequence, "hash": head.hash, "signed_at": signed_at, "sig": signature}
        line = json.dumps(record, sort_keys=True) + "\n"
        _append(settings.AUDIT_HEADS_FILE, line)
        failed: list[str] = []
        for copy in heads_copy_files():
            try:
                _append(copy, line)
            except OSError as exc:
                failed.append(f"{copy}: {exc}")
    if settings.AUDIT_WITNESS_URL:
        _push_to_witness(settings.AUDIT_WITNESS_URL, line)
    if failed:
        raise WitnessError(f"head #{head.sequence} signed, but not written to {'; '.join(failed)}")
    return SignedHead(head.sequence, head.hash, signed_at, 0, signature)


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
    query) every ``poll`` seconds; the appends themselves never wait for a signature."""
    try:
        signed = last_head()
    except HeadsFileError:  # audit_anchor reports it below
        signed = None
    signed_sequence = signed.sequence if signed else 0
    signed_clock = time.monotonic()
    last_error = ""
    try:
        while not stop.wait(min(poll, interval)):
            try:
                current = AuditChainHead.objects.values_list("sequence", flat=True).get(pk=1)
                waiting = current != signed_sequence
                if waiting and (
                    current - signed_sequence >= every_events or time.monotonic() - signed_clock >= interval
                ):
                    try:
                        head = audit_anchor()
                    except WitnessError:  # written to the files: counts as signed
                        written = last_head()
                        signed_sequence = written.sequence if written else signed_sequence
                        signed_clock = time.monotonic()
                        raise
                    signed_clock = time.monotonic()
                    signed_sequence = head.sequence if head else 0
                    if head is not None and on_signed is not None:
                        on_signed(head)
                last_error = ""
            except Exception as exc:
                if str(exc) != last_error:  # the same refusal once, not every second
                    logger.exception("audit anchoring failed")
                last_error = str(exc)
            finally:
                close_old_connections()
    finally:
        connection.close()  # this thread's own connection
