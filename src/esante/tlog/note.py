"""C2SP signed notes with Ed25519 and C2SP tlog-checkpoint bodies; no Django, no database (the
standalone verifier uses it as it is).

A checkpoint body is three lines: the log's origin, the tree size in decimal, the root hash in
base64. A signed note is that text, an empty line, then one line per signature:
``— <key name> <base64(key ID || signature)>``. For Ed25519 the key ID is the first 4 bytes of
SHA-256(key name || 0x0A || 0x01 || public key) and the signature is over the text's bytes.
The key name is the log's origin. A verifier key is written as Go's ``sumdb/note`` reads it:
``<name>+<key ID in hex>+<base64(0x01 || public key)>``.

A witness cosigns a checkpoint (C2SP tlog-cosignature, Ed25519 ``cosignature/v1``): its line in
the signature block is ``— <witness name> <base64(key ID || timestamp || signature)>``, where the
key ID is SHA-256(name || 0x0A || 0x04 || public key)[:4], the timestamp a big-endian u64 of POSIX
seconds, and the signature is over ``cosignature/v1\ntime <timestamp>\n`` followed by the
checkpoint's text. Its verifier key carries the type byte 0x04 instead of 0x01. The message's
first line cannot begin a checkpoint (no origin is ``cosignature/v1`` followed by ``time``), so
a log signature and a cosignature can never be taken for each other.

The platform signs checkpoints with its audit signing key, which also signs the heads file's
lines; those messages start with ``esante-audit-head:``, which no checkpoint's origin line can
be, so a signature made for one can never pass for the other.
"""

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
SIGNATURE_PREFIX = "\u2014 "  # em dash, space


class NoteError(Exception):
    """A note or checkpoint that is malformed or whose signature does not verify."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    text: str  # the signed body
    note: str = ""  # the whole signed note, when parsed from one


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise NoteError(f"key name {name!r} is empty or holds a space or a '+'")


def key_id(name: str, public: Ed25519PublicKey, alg: int = ALG_ED25519) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + _raw(public)).digest()[:4]


def verifier_key(name: str, public: Ed25519PublicKey, alg: int = ALG_ED25519) -> str:
    """The public key as a note verifier key (``name+hex key ID+base64(alg || key)``): ``alg``
    0x01 for a log's signatures, 0x04 (``ALG_COSIGNATURE_V1``) for a witness's cosignatures."""
    _check_name(name)
    encoded = base64.b64encode(bytes([alg]) + _raw(public)).decode()
    return f"{name}+{key_id(name, public, alg).hex()}+{encoded}"


@dataclass(frozen=True)
class Verifier:
    name: str
    key_id: bytes
    public: Ed25519PublicKey


def parse_verifier_key(vkey: str, alg: int = ALG_ED25519) -> Verifier:
    """A verifier key of type ``alg`` (0x01: a log's key; 0x04: a witness's cosignature key)."""
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3:
        raise NoteError("a verifier key reads name+keyid+key")
    name, hex_id, encoded = parts
    _check_name(name)
    try:
        raw = base64.b64decode(encoded, validate=True)
        wanted_id = bytes.fromhex(hex_id)
    except (ValueError, binascii.Error) as exc:
        raise NoteError(f"unreadable verifier key: {exc}") from exc
    if len(raw) != 33 or raw[0] != alg:
        kind = "a witness's Ed25519 cosignature key" if alg == ALG_COSIGNATURE_V1 else "an Ed25519 key"
        raise NoteError(f"the verifier key is not {kind} (type 0x{alg:02x})")
    public = Ed25519PublicKey.from_public_bytes(raw[1:])
    if key_id(name, public, alg) != wanted_id:
        raise NoteError("the verifier key's ID does not match its name and key")
    return Verifier(name, wanted_id, public)


def sign_note(text: str, name: str, private: Ed25519PrivateKey) -> str:
    """``text`` (ending in a newline) signed as a note under the key name ``name``."""
    _check_name(name)
    if not text.endswith("\n") or "\n\n" in text:
        raise NoteError("a note's text ends with a newline and holds no empty line")
    signature = private.sign(text.encode("utf-8"))
    stamp = base64.b64encode(key_id(name, private.public_key()) + signature).decode()
    return f"{text}\n{SIGNATURE_PREFIX}{name} {stamp}\n"


def parse_cosigner_key(vkey: str) -> Verifier:
    """A witness's verifier key (type 0x04, C2SP tlog-cosignature)."""
    return parse_verifier_key(vkey, ALG_COSIGNATURE_V1)


def _split_note(note: str) -> tuple[str, list[str]]:
    """(text, signature lines) of a note; raises NoteError when it has no signature block."""
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise NoteError("malformed note: no signature block")
    text, block = note[: split + 1], note[split + 2 :]
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("malformed note: control characters in its text")
    return text, block.splitlines()


def _signature(line: str) -> tuple[str, bytes]:
    if not line.startswith(SIGNATURE_PREFIX):
        raise NoteError("malformed note: a signature line does not start with an em dash")
    try:
        name, stamp = line[len(SIGNATURE_PREFIX) :].split(" ")
        raw = base64.b64decode(stamp, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise NoteError(f"malformed signature line: {exc}") from exc
    if len(raw) < 5:
        raise NoteError("malformed signature line: too short")
    return name, raw


def note_text(note: str) -> str:
    """The text of a note (before its signature block), nothing verified."""
    return _split_note(note)[0]


def signature_names(note: str) -> list[str]:
    """The key names of a note's signature lines, in order, nothing verified."""
    return [_signature(line)[0] for line in _split_note(note)[1]]


def lines_signed_by(note: str, verifier: Verifier) -> list[str]:
    """The signature lines of ``note`` that name ``verifier``'s key (name and key ID), nothing
    verified: the lines to keep from a witness's answer once ``open_cosignature`` passed."""
    return [
        line + "\n"
        for line in _split_note(note)[1]
        if _signature(line)[0] == verifier.name and _signature(line)[1][:4] == verifier.key_id
    ]


def cosignature_message(text: str, timestamp: int) -> bytes:
    """What a witness signs (C2SP tlog-cosignature, Ed25519 ``cosignature/v1``)."""
    return f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode("utf-8")


MAX_TIMESTAMP = (1 << 63) - 1


def cosign(text: str, name: str, private: Ed25519PrivateKey, timestamp: int) -> str:
    """A witness's cosignature line (ending in a newline) on the checkpoint ``text``."""
    _check_name(name)
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise NoteError("a cosignature's timestamp is a POSIX time below 2**63")
    signature = private.sign(cosignature_message(text, timestamp))
    stamp = key_id(name, private.public_key(), ALG_COSIGNATURE_V1) + timestamp.to_bytes(8, "big") + signature
    return f"{SIGNATURE_PREFIX}{name} {base64.b64encode(stamp).decode()}\n"


def open_cosignature(note: str, cosigner: Verifier) -> int:
    """The timestamp of ``cosigner``'s cosignature on ``note``, once it verifies; other lines are
    ignored. Raises NoteError when the note carries none, or one that does not verify."""
    text, lines = _split_note(note)
    timestamp: int | None = None
    for line in lines:
        name, raw = _signature(line)
        if name != cosigner.name or raw[:4] != cosigner.key_id:
            continue
        if len(raw) != 4 + 8 + 64:
            raise NoteError(f"the cosignature of {name} is not an Ed25519 cosignature/v1")
        stamp = int.from_bytes(raw[4:12], "big")
        if stamp > MAX_TIMESTAMP:
            raise NoteError(f"the cosignature of {name} has an out-of-range timestamp")
        try:
            cosigner.public.verify(raw[12:], cosignature_message(text, stamp))
        except InvalidSignature:
            raise NoteError(f"the cosignature of {name} does not verify") from None
        timestamp = stamp if timestamp is None else max(timestamp, stamp)
    if timestamp is None:
        raise NoteError(f"the checkpoint carries no cosignature by {cosigner.name}")
    return timestamp


def open_note(note: str, verifier: Verifier) -> str:
    """The text of ``note`` once ``verifier``'s signature on it verifies; other signers' lines
    are ignored. Raises NoteError when the note is malformed, lacks that key's signature, or a
    signature by that key does not verify."""
    text, lines = _split_note(note)
    verified = False
    for line in lines:
        name, raw = _signature(line)
        if name != verifier.name or raw[:4] != verifier.key_id:
            continue
        try:
            verifier.public.verify(raw[4:], text.encode("utf-8"))
        except InvalidSignature:
            raise NoteError(f"the signature of {name} does not verify") from None
        verified = True
    if not verified:
        raise NoteError(f"the note carries no signature by {verifier.name}")
    return text


def checkpoint_text(origin: str, size: int, root: bytes) -> str:
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def parse_checkpoint(text: str, note: str = "") -> Checkpoint:
    """A checkpoint body (extension lines after the third are allowed and ignored)."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise NoteError("a checkpoint has an origin, a size and a root hash, each on its line")
    origin, size_text, root_text = lines[:3]
    if not origin or not size_text.isdigit() or str(int(size_text)) != size_text:
        raise NoteError("malformed checkpoint origin or size")
    try:
        root = base64.b64decode(root_text, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise NoteError(f"malformed checkpoint root hash: {exc}") from exc
    if len(root) != 32:
        raise NoteError("the checkpoint's root hash is not 32 bytes")
    return Checkpoint(origin, int(size_text), root, text, note)


def open_checkpoint(note: str, verifier: Verifier, origin: str | None = None) -> Checkpoint:
    """A signed checkpoint, verified; with ``origin``, also checks it is that log's."""
    checkpoint = parse_checkpoint(open_note(note, verifier), note)
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"the checkpoint is for log {checkpoint.origin!r}, not {origin!r}")
    return checkpoint


def sign_checkpoint(origin: str, size: int, root: bytes, private: Ed25519PrivateKey) -> str:
    return sign_note(checkpoint_text(origin, size, root), origin, private)
