"""The checks one stored event must pass to belong to the chain, shared by ``verify_audit`` (the
whole chain) and the signer (the stretch it is about to sign)."""

import datetime
import hashlib
import json
from typing import Any

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
    object_type, object_id, motif, client_address, details = row[10:]
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


def segment_problem(*, after: int, after_hash: str, upto: int, upto_hash: str) -> str:
    """Why the events after #``after`` (hashed ``after_hash``) up to #``upto`` do not form an
    unbroken chain ending in ``upto_hash``; "" when they do. Reads only that stretch."""
    previous, expected = after_hash, after + 1
    rows = (
        AuditEvent.objects.filter(sequence__gt=after, sequence__lte=upto)
        .order_by("sequence")
        .values_list(*COLUMNS)
        .iterator(chunk_size=2_000)
    )
    for row in rows:
        problem = row_problem(row, expected_sequence=expected, previous=previous)
        if problem:
            return f"event #{min(row[0], expected)}: {problem}"
        previous, expected = row[2], expected + 1
    if expected != upto + 1:
        return f"event #{expected} is missing (the chain head says #{upto})"
    if previous != upto_hash:
        return f"event #{upto} differs from the chain head"
    return ""
