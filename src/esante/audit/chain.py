"""The checks one stored event must pass to belong to the chain, shared by ``verify_audit`` (the
whole chain) and the signer (the stretch it is about to sign).

MACs: every event written by ``audit_record`` carries HMAC-SHA256(MAC key, hash). Events written
before the column existed have none ("legacy, unkeyed"); they can only come first, so an event
without a MAC after one with a MAC was added or rewritten behind the platform's back.
"""

import datetime
import hashlib
import json
from typing import Any

from .keys import mac_matches
from .models import AuditEvent

# Columns that repeat the canonical content; a change to one of them behind the triggers' back
# is found by comparing it with the canonical bytes.
COLUMNS = (
    "sequence",
    "prev_hash",
    "hash",
    "canonical",
    "created_at",
    "actor_id",
    "actor_label",
    "action",
    "outcome",
    "patient_id",
    "object_type",
    "object_id",
    "motif",
    "client_address",
    "details",
    "mac",
)


def row_problem(row: tuple[Any, ...], *, expected_sequence: int, previous: str) -> str:
    """Why the stored row ``row`` (values of ``COLUMNS``) cannot follow the event hashed
    ``previous`` at position ``expected_sequence``; "" when it can."""
    sequence, prev_hash, digest, canonical = row[:4]
    if sequence != expected_sequence:
        return f"the event is missing (the next stored event is #{sequence})"
    if prev_hash != previous:
        return "it does not link to the previous event's hash"
    if hashlib.sha256(canonical.encode("utf-8")).hexdigest() != digest:
        return "its hash does not match its content"
    content = json.loads(canonical)
    created_at, actor_id, actor_label, action, outcome, patient_id = row[4:10]
    object_type, object_id, motif, client_address, details = row[10:15]
    if (
        content["seq"] != sequence
        or content["prev"] != prev_hash
        or content["time"] != created_at.astimezone(datetime.UTC).isoformat()
        or content["actor"] != actor_id
        or content["actor_label"] != actor_label
        or content["action"] != action
        or content["outcome"] != outcome
        or content["patient"] != patient_id
        or content["object_type"] != object_type
        or content["object_id"] != object_id
        or content["motif"] != motif
        or content["client_address"] != client_address
        or content["details"] != details
    ):
        return "its columns differ from its hashed content"
    return ""


def mac_problem(digest: str, mac: str | None, *, key: bytes, after_keyed: bool, allow_legacy: bool) -> str:
    """Why an event hashed ``digest`` with the stored ``mac`` fails its MAC check; "" when it
    passes. ``after_keyed``: an earlier event has a MAC. ``allow_legacy``: a NULL MAC before any
    keyed event passes (``verify_audit`` counts it; the signer signs it only when told to)."""
    if mac is None:
        if after_keyed:
            return "it has no MAC although earlier events have one: it was added or rewritten"
        if not allow_legacy:
            return "it has no MAC (a legacy, unkeyed event: sign it with `esante anchor_audit --initial`)"
        return ""
    if not mac_matches(digest, mac, key):
        return "its MAC does not match: it was forged or rewritten without the MAC key"
    return ""


def segment_problem(
    *, after: int, after_hash: str, upto: int, upto_hash: str, key: bytes, allow_legacy: bool = False
) -> str:
    """Why the events after #``after`` (hashed ``after_hash``) up to #``upto`` do not form an
    unbroken chain of events with valid MACs ending in ``upto_hash``; "" when they do. Reads only
    that stretch (and event #``after``'s MAC)."""
    previous, expected = after_hash, after + 1
    keyed = after > 0 and AuditEvent.objects.filter(sequence=after).exclude(mac=None).exists()
    rows = (
        AuditEvent.objects.filter(sequence__gt=after, sequence__lte=upto)
        .order_by("sequence")
        .values_list(*COLUMNS)
        .iterator(chunk_size=2_000)
    )
    for row in rows:
        problem = row_problem(row, expected_sequence=expected, previous=previous) or mac_problem(
            row[2], row[15], key=key, after_keyed=keyed, allow_legacy=allow_legacy
        )
        if problem:
            return f"event #{min(row[0], expected)}: {problem}"
        previous, expected = row[2], expected + 1
        keyed = keyed or row[15] is not None
    if expected != upto + 1:
        return f"event #{expected} is missing (the chain head says #{upto})"
    if previous != upto_hash:
        return f"event #{upto} differs from the chain head"
    return ""
