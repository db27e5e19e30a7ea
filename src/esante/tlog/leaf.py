"""What a leaf of the public log is: a salted commitment to one audit event, never the event.

The audit trail says who opened whose record. Publishing each event's canonical bytes (or their
plain SHA-256, which anyone can confirm by guessing a professional, a patient and a minute) would
tell the world who saw whom. So the log's entry for an event is

    commitment = SHA-256(salt || canonical)

where ``salt`` is 32 random bytes drawn for that event when it is sequenced (``tlog.sequencer``)
and ``canonical`` is the event's stored canonical bytes (UTF-8 JSON, ``AuditEvent.canonical``,
which include the previous event's chain hash). The Merkle leaf hash is the RFC 9162 one over
that 32-byte entry: ``SHA-256(0x00 || commitment)``.

Why this shape:

- Hiding: with a 256-bit random salt, a commitment says nothing about the event, even to someone
  who can list every professional and patient and guess the rest of the content.
- Binding: SHA-256 is collision resistant, so once a checkpoint covers the leaf, the operator
  cannot later show a patient a different event (or a different salt) for it.
- Opening: the salt is stored with the leaf (``tlog.models.LogLeaf``) and shown only in the
  patient's own journal, next to the event. With the salt, the event's canonical bytes and the
  leaf index, the patient (or software they trust) recomputes the leaf hash and checks its
  inclusion proof against a signed checkpoint that everybody else sees too.

What stays public: how many events the platform records and when they were sequenced (the tree
size of each checkpoint), nothing about any one event.
"""

import hashlib

SALT_BYTES = 32


def commitment(salt: bytes, canonical: str | bytes) -> bytes:
    """The log entry of an event: SHA-256(salt || canonical bytes)."""
    if len(salt) != SALT_BYTES:
        raise ValueError(f"a leaf salt has {SALT_BYTES} bytes")
    data = canonical.encode("utf-8") if isinstance(canonical, str) else canonical
    return hashlib.sha256(salt + data).digest()
