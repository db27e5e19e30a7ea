"""Checking the stored public log against the audit events and its own checkpoints
(``esante verify_log``), with the whole database at hand: every leaf's commitment opens to its
event's canonical bytes with its salt, the leaves follow the events in order without a gap, the
stored tiles are the ones the leaves give, and every checkpoint is validly signed and carries
the root of the leaves up to its size. ``esante verify_audit`` checks the events' own chain."""

import hashlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Q

from esante.audit.chain import CANONICAL, LEAF_COMMITMENT, LEAF_INDEX, LEAF_SALT, SEQUENCE
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
    # Not yet in the log: chained after its last leaf, or still waiting for the chainer (batched
    # chaining: no sequence yet).
    last = state.last_sequence if state else 0
    result.waiting = AuditEvent.objects.filter(Q(sequence__gt=last) | Q(sequence=None)).count()
    return result


# What ``esante verify_audit`` checks of the log, in the same pass as the events' chain.


def _fold(stack: list[bytes]) -> bytes:
    """The root of a tree whose complete subtrees, left to right, hash to ``stack``."""
    node = stack[-1]
    for left in reversed(stack[:-1]):
        node = merkle.node_hash(left, node)
    return node


@dataclass
class Checkpoints:
    """The log's signed checkpoints (size: root, each signature and signed body checked) and
    its state (how many leaves the log holds, their root), read before the walk."""

    roots: dict[int, bytes]
    size: int
    root: bytes


def load_checkpoints() -> tuple[Checkpoints | None, str, str]:
    """The checkpoints, or None with the problem (second) or the missing key (third) that
    stops verification. A checkpoint that covers more leaves than the log's state is a problem."""
    rows = list(LogCheckpoint.objects.order_by("size").values_list("size", "root", "note"))
    state = LogState.objects.filter(pk=1).values_list("size", "root").first()
    size, root = (state[0], bytes(state[1])) if state else (0, merkle.root_from_hashes([]))
    if rows:
        try:
            verifier = note.parse_verifier_key(
                note.verifier_key(settings.TLOG_ORIGIN, verification_public_key())
            )
        except (MissingKeyError, ValueError) as exc:
            return None, "", f"{exc}: the public log's checkpoints cannot be checked"
    roots: dict[int, bytes] = {}
    for checkpoint_size, checkpoint_root, signed in rows:
        try:
            opened = note.open_checkpoint(signed, verifier, settings.TLOG_ORIGIN)
        except note.NoteError as exc:
            return None, f"public log checkpoint {checkpoint_size}: {exc}", ""
        if opened.size != checkpoint_size or opened.root != bytes(checkpoint_root):
            return (
                None,
                f"public log checkpoint {checkpoint_size}: its signed body differs from its stored root",
                "",
            )
        if checkpoint_size > size:
            return (
                None,
                (
                    f"public log checkpoint {checkpoint_size} covers more leaves than the log's state "
                    f"({size}): leaves were removed"
                ),
                "",
            )
        roots[checkpoint_size] = opened.root
    return Checkpoints(roots, size, root), "", ""


class TreeWalk:
    """The log's tree rebuilt from the leaves of the events a walk meets, in order, from leaf
    ``start`` (0, or a multiple of a power of two at least as large as the leaves this walk will
    meet: a range of a parallel walk). Every event up to the log's state size ``covered`` must
    have its leaf (index: its sequence - 1) and the leaf's commitment must open to the event's
    canonical bytes; the complete subtrees at each size of ``sizes`` are kept (``snapshots``)
    for the roots to be compared with the checkpoints'."""

    def __init__(self, start: int, covered: int, sizes: Collection[int]) -> None:
        self.start, self.covered, self.sizes = start, covered, sizes
        self.count = 0
        self.stack: list[bytes] = []
        self.snapshots: dict[int, list[bytes]] = {}

    def add(self, rows: Sequence[tuple[Any, ...]], begin: int, end: int) -> str:
        """Adds the leaves of the events ``rows[begin:end]`` (rows of ``audit.chain.stored_rows``,
        already checked to follow each other); why the first wrong one is wrong, "" if none is."""
        sha256, stack, sizes = hashlib.sha256, self.stack, self.sizes
        count, start, covered = self.count, self.start, self.covered
        try:
            for at in range(begin, end):
                index = start + count
                if index >= covered:
                    break  # events not yet in the log
                row = rows[at]
                salt, commitment = row[LEAF_SALT], row[LEAF_COMMITMENT]
                if row[LEAF_INDEX] != index or row[SEQUENCE] != index + 1:
                    self.count = count
                    return f"its public log leaf ({index}) is missing"
                if (
                    len(salt) != leaf.SALT_BYTES
                    or sha256(salt + row[CANONICAL].encode("utf-8")).digest() != commitment
                ):
                    self.count = count
                    return "its public log leaf's commitment does not open to it with its salt"
                node = sha256(b"\x00" + commitment).digest()
                count += 1
                merged = count
                while not merged & 1:
                    node = sha256(b"\x01" + stack.pop() + node).digest()
                    merged >>= 1
                stack.append(node)
                if start + count in sizes:
                    self.snapshots[start + count] = stack.copy()
        finally:
            self.count = count
        return ""

    def root_problem(self, checkpoints: Checkpoints, prefix: list[bytes] | None = None) -> str:
        """Why the roots this walk gives (after the complete subtrees ``prefix`` of the leaves
        before ``start``) differ from the checkpoints' or the state's; "" when they do not."""
        for size, snapshot in sorted(self.snapshots.items()):
            root = _fold([*(prefix or []), *snapshot])
            if size in checkpoints.roots and root != checkpoints.roots[size]:
                return f"public log checkpoint {size}: its root is not the root of the first {size} leaves"
            if size == checkpoints.size and root != checkpoints.root:
                return f"the public log's state (size {size}) differs from its {size} leaves"
        return ""
