"""Checking the stored public log against the audit events and its own checkpoints
(``esante verify_log``), with the whole database at hand: every leaf's commitment opens to its
event's canonical bytes with its salt, the leaves follow the events in order without a gap, the
stored tiles are the ones the leaves give, and every checkpoint is validly signed and carries
the root of the leaves up to its size. ``esante verify_audit`` checks the events' own chain."""

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from esante.audit.keys import MissingKeyError, verification_public_key
from esante.audit.models import AuditEvent

from . import leaf, merkle, note, tiles
from .models import LogCheckpoint, LogLeaf, LogState, LogTile


@dataclass
class LogVerification:
    leaves: int = 0
    checkpoints: int = 0
    cosigned: int = 0  # checkpoints carrying the witness's valid cosignature
    waiting: int = 0  # audit events not yet in the log
    problem: str = ""
    missing_key: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem and not self.missing_key


def _leaf_hashes(
    result: LogVerification, progress: Callable[[int], None] | None, chunk: int
) -> list[bytes] | None:
    hashes: list[bytes] = []
    previous_sequence = 0
    rows = (
        LogLeaf.objects.order_by("index")
        .values_list("index", "salt", "commitment", "event__sequence", "event__canonical")
        .iterator(chunk_size=chunk)
    )
    for index, salt, commitment, sequence, canonical in rows:
        if index != len(hashes):
            result.problem = f"leaf {len(hashes)} is missing (the next stored leaf is {index})"
            return None
        if sequence != previous_sequence + 1:
            result.problem = (
                f"leaf {index} is event #{sequence}, not #{previous_sequence + 1}: events out of order"
            )
            return None
        if leaf.commitment(bytes(salt), canonical or "") != bytes(commitment):  # logged: chained
            result.problem = f"leaf {index}: its commitment does not open to event #{sequence} with its salt"
            return None
        hashes.append(merkle.leaf_hash(bytes(commitment)))
        previous_sequence = sequence
        if progress is not None and len(hashes) % chunk == 0:
            progress(chunk)
    return hashes


def verify_log(progress: Callable[[int], None] | None = None, chunk_size: int = 10_000) -> LogVerification:
    result = LogVerification()
    try:
        verifier = note.parse_verifier_key(note.verifier_key(settings.TLOG_ORIGIN, verification_public_key()))
    except (MissingKeyError, ValueError) as exc:
        result.missing_key = str(exc)
        return result
    hashes = _leaf_hashes(result, progress, chunk_size)
    if hashes is None:
        return result
    result.leaves = len(hashes)
    signed_size = LogCheckpoint.objects.order_by("-size").values_list("size", flat=True).first() or 0
    if signed_size > len(hashes):
        result.problem = (
            f"checkpoint {signed_size} covers more leaves than the log holds ({len(hashes)}): "
            "leaves were removed"
        )
        return result
    expected = tiles.MemoryTiles()
    expected.tiles.update(tiles.append_hashes(0, hashes, expected.tile))
    for level, index, stored in LogTile.objects.order_by("level", "index").values_list(
        "level", "index", "hashes"
    ):
        if expected.tile(level, index) != bytes(stored):
            result.problem = f"tile {level}/{index} differs from the one its leaves give"
            return result
        expected.tiles.pop((level, index))
    if expected.tiles:
        level, index = min(expected.tiles)
        result.problem = f"tile {level}/{index} is missing"
        return result
    expected.tiles.update(tiles.append_hashes(0, hashes, expected.tile))
    cosigner = note.parse_cosigner_key(settings.TLOG_WITNESS_KEY) if settings.TLOG_WITNESS_KEY else None
    for size, root, signed, cosignature in LogCheckpoint.objects.order_by("size").values_list(
        "size", "root", "note", "cosignature"
    ):
        try:
            checkpoint = note.open_checkpoint(signed, verifier, settings.TLOG_ORIGIN)
        except note.NoteError as exc:
            result.problem = f"checkpoint {size}: {exc}"
            return result
        if checkpoint.size != size or checkpoint.root != bytes(root):
            result.problem = f"checkpoint {size}: its signed body differs from its stored size or root"
            return result
        if tiles.tree_root(expected, size) != checkpoint.root:
            result.problem = f"checkpoint {size}: its root is not the root of the first {size} leaves"
            return result
        if cosignature and cosigner is not None:
            try:
                note.open_cosignature(signed + cosignature, cosigner)
            except note.NoteError as exc:
                result.problem = f"checkpoint {size}: the witness's cosignature stored with it: {exc}"
                return result
            result.cosigned += 1
        result.checkpoints += 1
    state = LogState.objects.filter(pk=1).first()
    if state is not None and (
        state.size != len(hashes) or bytes(state.root) != tiles.tree_root(expected, state.size)
    ):
        result.problem = f"the log's state (size {state.size}) differs from its {len(hashes)} leaves"
        return result
    result.waiting = AuditEvent.objects.filter(sequence__gt=state.last_sequence if state else 0).count()
    return result
