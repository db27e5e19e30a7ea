"""Anchoring the chain outside the database: signed heads in an append-only file.

The head (sequence, hash) is signed with an Ed25519 key kept outside the database and appended
as one JSON line to ``AUDIT_HEADS_FILE``. Whoever rewrites or truncates the table cannot produce
a matching signature, so ``verify_audit`` finds it.
"""

import base64
import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

from .models import AuditChainHead


@dataclass(frozen=True)
class SignedHead:
    sequence: int
    hash: str
    signed_at: str
    line: int


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


def audit_anchor() -> SignedHead | None:
    """Signs the current head and appends it to the heads file; skips when nothing changed."""
    head = AuditChainHead.objects.get(pk=1)
    if head.sequence == 0:
        return None
    heads = read_heads()
    if heads and heads[-1].sequence == head.sequence and heads[-1].hash == head.hash:
        return heads[-1]
    key = load_or_create_key()
    signed_at = datetime.datetime.now(datetime.UTC).isoformat()
    signature = key.sign(_message(head.sequence, head.hash, signed_at))
    record = {
        "seq": head.sequence,
        "hash": head.hash,
        "signed_at": signed_at,
        "sig": base64.b64encode(signature).decode(),
    }
    path: Path = settings.AUDIT_HEADS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return SignedHead(head.sequence, head.hash, signed_at, len(heads) + 1)


class HeadsFileError(Exception):
    pass


def read_heads(public_key: Ed25519PublicKey | None = None) -> list[SignedHead]:
    """Reads the heads file; with a public key, checks every signature (HeadsFileError if one fails)."""
    path: Path = settings.AUDIT_HEADS_FILE
    if not path.exists():
        return []
    heads = []
    with path.open(encoding="utf-8") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
                head = SignedHead(int(record["seq"]), str(record["hash"]), str(record["signed_at"]), number)
                signature = base64.b64decode(record["sig"])
            except (ValueError, KeyError, TypeError) as exc:
                raise HeadsFileError(f"heads file line {number} is unreadable: {exc}") from exc
            if public_key is not None:
                try:
                    public_key.verify(signature, _message(head.sequence, head.hash, head.signed_at))
                except InvalidSignature:
                    raise HeadsFileError(f"heads file line {number}: signature does not verify") from None
            heads.append(head)
    return heads
