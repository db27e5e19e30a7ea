"""The signed heads files: the line format of a signed head, reading and checking a heads file
(each signature against the public key), its locks, and appending to it and its copies. The
signing itself, the signer's state and the witness are in ``anchoring``."""

import base64
import contextlib
import datetime
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings


@dataclass(frozen=True)
class SignedHead:
    sequence: int
    hash: str
    signed_at: str
    line: int = field(compare=False)  # the line in the heads file; 0 when not counted
    signature: str = ""


class HeadsFileError(Exception):
    pass


def _message(sequence: int, digest: str, signed_at: str) -> bytes:
    return f"esante-audit-head:{sequence}:{digest}:{signed_at}".encode()


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


@contextlib.contextmanager
def heads_read_lock() -> Iterator[None]:
    """Shared lock for readers (``verify_audit``): no head is signed while the heads file, its
    copies and the signer's state are read, so they are seen as of one moment. Where the lock
    file cannot be opened (a read-only copy of the files on another host, where no signer runs),
    reads without it."""
    path: Path = settings.AUDIT_HEADS_FILE
    try:
        lock = path.with_name(path.name + ".lock").open("a")
    except OSError:
        lock = None
    if lock is None:
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
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


def heads_after(sequence: int, path: Path | None = None) -> list[str]:
    """The lines of a heads file whose head follows #``sequence``, in order; read backwards from
    the file's end (the file grows for ever, the missing lines are usually the last few)."""
    path = path or settings.AUDIT_HEADS_FILE
    if not path.exists():
        return []
    with path.open("rb") as fh:
        position = fh.seek(0, os.SEEK_END)
        data = b""
        while position > 0:
            step = min(65536, position)
            position -= step
            fh.seek(position)
            data = fh.read(step) + data
            complete = data.split(b"\n")[1:] if position > 0 else data.split(b"\n")
            first = next((raw for raw in complete if raw.strip()), None)
            if (
                first is not None
                and _parse(first.decode("utf-8", errors="replace"), 0)[0].sequence <= sequence
            ):
                break
    lines = data.split(b"\n")[1:] if position > 0 else data.split(b"\n")
    texts = [raw.decode("utf-8", errors="replace") for raw in lines if raw.strip()]
    return [text + "\n" for text in texts if _parse(text, 0)[0].sequence > sequence]
