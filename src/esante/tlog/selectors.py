"""Reading the public log: the latest checkpoint, proofs, and an event's place in the log (for
the patient's journal: "vérifié dans le journal public, point de contrôle N")."""

from dataclasses import dataclass

from .models import LogCheckpoint, LogLeaf
from .storage import DatabaseTiles
from .tiles import consistency_proof, inclusion_proof


def latest_checkpoint() -> LogCheckpoint | None:
    return LogCheckpoint.objects.order_by("-size").first()


def published_size() -> int:
    """The size of the latest signed checkpoint: proofs are served up to it, never beyond."""
    latest = LogCheckpoint.objects.order_by("-size").values_list("size", flat=True).first()
    return latest or 0


def inclusion_for_event(event_id: int) -> tuple[int, int] | None:
    """(leaf index, size of the latest checkpoint covering it) for an audit event; None while the
    event is not yet in a signed checkpoint. Two queries."""
    index = LogLeaf.objects.filter(event_id=event_id).values_list("index", flat=True).first()
    if index is None:
        return None
    size = published_size()
    return (index, size) if size > index else None


def inclusions_for_events(event_ids: list[int]) -> dict[int, tuple[int, int]]:
    """``inclusion_for_event`` for a page of events at once (two queries): {event id: (leaf
    index, checkpoint size)} for those a signed checkpoint covers; the others are absent."""
    size = published_size()
    leaves = LogLeaf.objects.filter(event_id__in=event_ids, index__lt=size).values_list("event_id", "index")
    return {event_id: (index, size) for event_id, index in leaves}


@dataclass(frozen=True)
class LeafOpening:
    """What opens an event's public commitment: shown only in the patient's own journal."""

    index: int
    salt: bytes
    commitment: bytes


def leaf_opening(event_id: int) -> LeafOpening | None:
    found = LogLeaf.objects.filter(event_id=event_id).values_list("index", "salt", "commitment").first()
    if found is None:
        return None
    return LeafOpening(found[0], bytes(found[1]), bytes(found[2]))


def inclusion_proof_for(index: int, size: int) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in the tree of ``size`` (ValueError out of range,
    or beyond the latest checkpoint)."""
    if size > published_size():
        raise ValueError("tree size beyond the latest checkpoint")
    return inclusion_proof(DatabaseTiles(), index, size)


def consistency_proof_for(old_size: int, size: int) -> list[bytes]:
    if size > published_size():
        raise ValueError("tree size beyond the latest checkpoint")
    return consistency_proof(DatabaseTiles(), old_size, size)
