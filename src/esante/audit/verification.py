"""Re-computing the chain and checking it against the signed heads (``esante verify_audit``)."""

import datetime
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from .anchoring import HeadsFileError, load_or_create_key, read_heads
from .models import AuditEvent
from .services import GENESIS_HASH

# Columns that repeat the canonical content; a change to one of them behind the triggers' back
# is found by comparing it with the canonical bytes.
_COLUMNS = (
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


@dataclass
class VerificationResult:
    checked: int = 0
    heads_checked: int = 0
    broken_sequence: int | None = None
    problem: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problem


def verify_chain(
    progress: Callable[[int], None] | None = None, chunk_size: int = 10_000
) -> VerificationResult:
    """Walks every event in order; stops at the first one that breaks the chain."""
    result = VerificationResult()
    try:
        heads = read_heads(load_or_create_key().public_key())
    except HeadsFileError as exc:
        result.problem = str(exc)
        return result
    expected_heads = {head.sequence: head for head in heads}
    previous = GENESIS_HASH
    expected_sequence = 1
    rows = AuditEvent.objects.order_by("sequence").values_list(*_COLUMNS).iterator(chunk_size=chunk_size)
    sha256 = hashlib.sha256
    loads = json.loads
    for row in rows:
        sequence, prev_hash, digest, canonical = row[:4]
        broken = ""
        if sequence != expected_sequence:
            broken = f"the event is missing (the next stored event is #{sequence})"
        elif prev_hash != previous:
            broken = "it does not link to the previous event's hash"
        elif sha256(canonical.encode("utf-8")).hexdigest() != digest:
            broken = "its hash does not match its content"
        else:
            content = loads(canonical)
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
                broken = "its columns differ from its hashed content"
            else:
                head = expected_heads.get(sequence)
                if head is not None and head.hash != digest:
                    broken = (
                        f"it differs from the head signed at {head.signed_at}: "
                        "the chain was rewritten at or before this event"
                    )
                elif head is not None:
                    result.heads_checked += 1
        if broken:
            result.broken_sequence = min(sequence, expected_sequence)
            result.problem = broken
            return result
        previous = digest
        expected_sequence += 1
        result.checked += 1
        if progress is not None and result.checked % chunk_size == 0:
            progress(chunk_size)
    last = expected_sequence - 1
    beyond = [head for head in heads if head.sequence > last]
    if beyond:
        result.broken_sequence = last + 1
        result.problem = (
            f"the trail ends at event #{last} but a head was signed at event #{beyond[0].sequence} "
            f"({beyond[0].signed_at}): events were removed"
        )
    elif not heads and last:
        result.warnings.append("no signed head yet: run `esante anchor_audit` to anchor the chain")
    return result
