"""The audit trail's keys, all kept outside the database.

- The Ed25519 signing key (``AUDIT_SIGNING_KEY_FILE``) signs the chain's heads; its public half
  (``AUDIT_PUBLIC_KEY_FILE``) is written next to it when it is created. ``verify_audit`` reads
  only a public key and never creates one.
- The MAC key (``AUDIT_MAC_KEY_FILE``): ``audit_record`` stores HMAC-SHA256(key, event hash) with
  each event, so an event forged in the database, even one that chains correctly, has no valid
  MAC. Checked by the signer before it signs and by ``verify_audit``. An event waiting for the
  chainer (batched chaining) carries its intake MAC instead, over its id and content
  (``intake_mac``).

Both are created on first use (``esante demo``, the first event or signature of a fresh install),
mode 0600, atomically: concurrent workers creating the same file all end up reading one key.
"""

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

MAC_KEY_BYTES = 32


class MissingKeyError(Exception):
    """No key to verify with: nothing is created, verification cannot vouch for anything."""


def _create_exclusive(path: Path, content: bytes) -> bool:
    """Writes ``content`` to ``path`` (mode 0600) unless it exists; never a half-written file:
    the content goes to a temporary file that is then hard-linked into place. True when created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        temporary.unlink(missing_ok=True)


def _public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_or_create_signing_key(path: Path | None = None) -> Ed25519PrivateKey:
    """The signing key; created (with its public key file next to it) when there is none.
    Only the signer calls this."""
    path = path or settings.AUDIT_SIGNING_KEY_FILE
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _create_exclusive(path, pem)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    public_path: Path = settings.AUDIT_PUBLIC_KEY_FILE
    if not public_path.exists():  # created with the key (or, for a key of an older release, now)
        _create_exclusive(public_path, _public_pem(loaded.public_key()))
    return loaded


def verification_public_key() -> Ed25519PublicKey:
    """The public key that verifies the heads: derived from the private key file when it is at
    hand, else read from ``AUDIT_PUBLIC_KEY_FILE``. Never writes a file.

    Raises MissingKeyError when neither exists, ValueError when the file holds no Ed25519 key.
    """
    private: Path = settings.AUDIT_SIGNING_KEY_FILE
    public: Path = settings.AUDIT_PUBLIC_KEY_FILE
    if private.exists():
        loaded = serialization.load_pem_private_key(private.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ValueError(f"{private} is not an Ed25519 private key")
        return loaded.public_key()
    if public.exists():
        loaded_public = serialization.load_pem_public_key(public.read_bytes())
        if not isinstance(loaded_public, Ed25519PublicKey):
            raise ValueError(f"{public} is not an Ed25519 public key")
        return loaded_public
    raise MissingKeyError(
        f"no key to verify the signed heads with: neither {private} nor {public} exists "
        "(set ESANTE_AUDIT_PUBLIC_KEY_FILE to a copy of the platform's public key)"
    )


_mac_keys: dict[Path, bytes] = {}


def _read_mac_key(path: Path) -> bytes:
    key = path.read_bytes()
    if len(key) != MAC_KEY_BYTES:
        raise ValueError(f"{path} does not hold a {MAC_KEY_BYTES}-byte audit MAC key")
    return key


def mac_key(*, create: bool = True) -> bytes:
    """The MAC key, read once per process. With ``create`` (``audit_record``), made when missing;
    without it (``verify_audit``), MissingKeyError."""
    path: Path = settings.AUDIT_MAC_KEY_FILE
    key = _mac_keys.get(path)
    if key is not None:
        return key
    if not path.exists():
        if not create:
            raise MissingKeyError(f"no audit MAC key at {path} (ESANTE_AUDIT_MAC_KEY_FILE)")
        _create_exclusive(path, secrets.token_bytes(MAC_KEY_BYTES))
    key = _mac_keys[path] = _read_mac_key(path)
    return key


def forget_mac_keys() -> None:
    """Drops the keys read so far (a test that replaces or removes the key file)."""
    _mac_keys.clear()


def event_mac(digest: str, key: bytes | None = None) -> str:
    """HMAC-SHA256 of an event's hash (which covers its content and the previous hash)."""
    return hmac.new(key if key is not None else mac_key(), digest.encode("ascii"), hashlib.sha256).hexdigest()


def intake_mac(event_id: int, content: str, key: bytes | None = None) -> str:
    """The intake MAC of an unchained event (batched chaining): HMAC-SHA256 of its row id and its
    content's canonical text, under a label of its own so it can never pass for an event MAC. The
    id is in it so that a copy of a waiting row, under another id, has no valid MAC."""
    message = b"esante-audit-intake:%d:" % event_id + content.encode("utf-8")
    return hmac.new(key if key is not None else mac_key(), message, hashlib.sha256).hexdigest()


def intake_mac_matches(event_id: int, content: str, mac: str, key: bytes) -> bool:
    """Constant-time comparison of a stored intake MAC with the one the key gives."""
    return hmac.compare_digest(intake_mac(event_id, content, key).encode("ascii"), mac.encode("utf-8"))


def mac_matches(digest: str, mac: str, key: bytes) -> bool:
    """Constant-time comparison of a stored MAC with the one the key gives."""
    return hmac.compare_digest(event_mac(digest, key).encode("ascii"), mac.encode("utf-8"))
