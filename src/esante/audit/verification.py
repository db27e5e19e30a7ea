"""Re-computing the chain and checking it against the signed heads (``esante verify_audit``).

Outcomes: the chain is broken (a changed, missing, re-hashed or added event, an event whose MAC
does not match, a forged or reordered heads file, a copy holding a head the heads file lacks or a
different one, a heads file behind the signer's own state); the chain is intact and its last
event is covered by a signed head; the chain is intact *up to the last signed head* and the
events after it are unsigned (nothing but the database vouches for those: someone able to write
to it could have changed, removed or added them consistently, so they are never called intact);
a copy of the heads file lags (holds only the first of the heads: its volume was away, the signer
catches it up); or there is no key to verify with (nothing is created).

In the same pass, the public log's tree is checked against its checkpoints (``tlog.verification``'s
``TreeWalk``): every event the log's state covers has its leaf, whose commitment opens to the
event's canonical bytes with its salt, and every validly signed checkpoint's root (and the state's)
is the root of the leaves up to its size. The stored tiles are left to ``esante verify_log``.

Events without a MAC at the start of the trail were written before the MAC column existed: they
are counted as "legacy, unkeyed" (their hash chain and signatures are checked, not their MAC).
"""

import bisect
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.db import connections
from django.db.models import Max, Min

from esante.tlog import merkle
from esante.tlog.verification import Checkpoints, TreeWalk, load_checkpoints

from .anchoring import (
    HeadsFileError,
    SignedHead,
    heads_copy_files,
    heads_read_lock,
    read_heads,
    read_signer_state,
)
from .chain import MAC, keyed_run, mac_problem, raw_row_problem, stored_rows
from .chaining import check_pending
from .keys import MissingKeyError, mac_key, verification_public_key
from .models import AuditChainHead, AuditEvent
from .services import GENESIS_HASH

logger = logging.getLogger("esante.audit")


@dataclass
class VerificationResult:
    checked: int = 0
    heads_checked: int = 0
    broken_sequence: int | None = None
    problem: str = ""
    last_sequence: int = 0
    last_signed: SignedHead | None = None
    warnings: list[str] = field(default_factory=list)
    lagging: list[str] = field(default_factory=list)  # copies that hold only the first heads
    legacy: int = 0  # events written before the MAC column existed
    missing_key: str = ""  # no key to verify with: nothing could be vouched for
    leaves: int = 0  # events found in the public log, their leaves' commitments opened
    checkpoints: int = 0  # the log's signed checkpoints whose roots the leaves give
    pending: int = 0  # events waiting for the chainer (batched chaining), their intake MAC checked

    @property
    def ok(self) -> bool:
        """No event was found changed, missing or added (unsigned events may remain)."""
        return not self.problem and not self.missing_key

    @property
    def signed_sequence(self) -> int:
        return self.last_signed.sequence if self.last_signed else 0

    @property
    def unsigned(self) -> int:
        """Events after the last signed head: checked only against the database itself."""
        return max(0, self.last_sequence - self.signed_sequence)

    @property
    def fully_signed(self) -> bool:
        return self.ok and self.unsigned == 0


def _key(head: SignedHead) -> tuple[int, str, str, str]:
    return (head.sequence, head.hash, head.signed_at, head.signature)


def _compare_copy(primary: list[SignedHead], primary_path: Path, copy: list[SignedHead], path: Path) -> str:
    """Compares a copy with the heads file up to the shorter of the two. "" when the copy holds
    exactly the heads file's heads; "lags: ..." when it holds only its first heads (signed while
    the copy's volume was away); any other answer is a disagreement."""
    for index, (mine, theirs) in enumerate(zip(primary, copy, strict=False)):
        if _key(mine) != _key(theirs):
            first = min(_key(mine), _key(theirs))
            holder, lacking = (primary_path, path) if first == _key(mine) else (path, primary_path)
            return f"head #{first[0]} ({first[2]}) is in {holder} but not in {lacking} (line {index + 1})"
    if len(copy) > len(primary):
        extra = copy[len(primary)]
        return f"head #{extra.sequence} ({extra.signed_at}) is in {path} but not in {primary_path}"
    if len(copy) < len(primary):
        last = f"#{copy[-1].sequence}" if copy else "none"
        return (
            f"lags: the copy {path} holds the heads up to {last}, the heads file up to "
            f"#{primary[-1].sequence} (its volume was away; the signer appends the missing heads)"
        )
    return ""


def _load_heads(result: VerificationResult, copies: list[Path]) -> list[SignedHead] | None:
    """All signed heads, checked for signatures, for agreement between the heads files and with
    the signer's state; read under the heads lock, so no head is signed meanwhile."""
    primary: Path = settings.AUDIT_HEADS_FILE
    public_key: Ed25519PublicKey | None
    try:
        public_key = verification_public_key()
    except (MissingKeyError, ValueError) as exc:
        public_key, missing = None, str(exc)
    try:
        with heads_read_lock():
            heads = read_heads(public_key, primary)
            copy_heads = {copy: read_heads(public_key, copy) for copy in copies if copy.exists()}
            state = read_signer_state()
    except HeadsFileError as exc:
        result.problem = str(exc)
        return None
    if public_key is None and (heads or any(copy_heads.values())):
        result.missing_key = missing
        return None
    for copy in copies:
        if copy not in copy_heads:
            if heads:
                result.lagging.append(f"the heads file copy {copy} does not exist (its volume is away?)")
            continue
        difference = _compare_copy(heads, primary, copy_heads[copy], copy)
        if difference.startswith("lags: "):
            result.lagging.append(difference.removeprefix("lags: "))
        elif difference:
            result.problem = f"the heads files disagree: {difference}"
            return None
    last = heads[-1] if heads else None
    signed = last.sequence if last is not None else 0
    if state.sequence > signed or (
        last is not None and state.sequence == signed and state.exists and state.hash != last.hash
    ):
        result.problem = (
            f"the heads file is behind the signer's state ({settings.AUDIT_SIGNER_STATE_FILE}: head "
            f"#{state.sequence} was signed, the heads file's last head is #{signed}): heads were removed"
        )
        return None
    return heads


# Events per range of the parallel pass: a power of two, so that each range's leaves of the public
# log form complete subtrees of the tree (``TreeWalk``).
RANGE_SIZE = 1 << 16


def _check_range(
    task: tuple[int, int, bytes, dict[int, str], int, frozenset[int]],
) -> tuple[bool, str, str, int, list[bytes], dict[int, list[bytes]]]:
    """In a worker process: whether the events after #``after`` up to #``upto`` are all keyed and
    vouched for by ``keyed_run``, match the signed heads among them and have their public log
    leaves; with the previous hash the first of them names and the last one's hash, for the
    parent to join the ranges, and the range's leaves: how many, their complete subtrees, and
    those at each checkpoint size in the range."""
    after, upto, key, heads, covered, sizes = task
    expected, first_previous, previous = after + 1, "", ""
    tree = TreeWalk(after, covered, sizes)

    def answer(ok: bool) -> tuple[bool, str, str, int, list[bytes], dict[int, list[bytes]]]:
        return ok, first_previous, previous, tree.count, tree.stack, tree.snapshots

    for rows in stored_rows(after, upto):
        if not first_previous:
            first_previous = previous = rows[0][1]
        run = keyed_run(rows, 0, expected_sequence=expected, previous=previous, key=key, tree=tree)
        if run != len(rows):
            return answer(False)
        for at in range(expected, expected + run):
            if at in heads and heads[at] != rows[at - expected][2]:
                return answer(False)
        previous, expected = rows[-1][2], expected + run
    return answer(expected == upto + 1)


def _parallel_walk(
    upto: int,
    heads: dict[int, SignedHead],
    checkpoints: Checkpoints,
    processes: int,
    progress: Callable[[int], None] | None,
) -> tuple[str, int] | None:
    """The hash of event #``upto`` and the number of its events in the public log when every
    event up to it is keyed, vouched for and joined to the one before, its leaf opens and the
    leaves give the checkpoints' roots, checked by ``processes`` worker processes in ranges;
    None when anything is not so (the sequential walk then finds and words the first problem).
    Reports progress per range; on None, takes back the progress it reported."""
    try:
        key = mac_key(create=False)
    except (MissingKeyError, ValueError):
        return None
    hashes = {sequence: head.hash for sequence, head in heads.items() if sequence <= upto}
    sizes = {*checkpoints.roots, checkpoints.size}
    tasks = [
        (
            after,
            until := min(after + RANGE_SIZE, upto),
            key,
            hashes,
            checkpoints.size,
            frozenset(size for size in sizes if after < size <= until),
        )
        for after in range(0, upto, RANGE_SIZE)
    ]
    # The workers are forked: each opens its own connection, none inherits the parent's.
    connections.close_all()
    reported, previous, leaves = 0, GENESIS_HASH, 0
    subtrees: list[bytes] = []  # the complete subtrees of the leaves of the ranges joined so far

    def undo() -> None:
        if progress is not None and reported:
            progress(-reported)

    # concurrent.futures rather than multiprocessing.Pool: a worker that dies (killed, out of
    # memory) breaks the pool with an exception instead of leaving the walk waiting forever.
    with ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("fork")) as pool:
        try:
            for (after, until, *_), (ok, first_previous, last, count, stack, snapshots) in zip(
                tasks, pool.map(_check_range, tasks), strict=True
            ):
                tree = TreeWalk(after, checkpoints.size, ())
                tree.snapshots = snapshots
                if (
                    not ok
                    or first_previous != previous
                    or (count and leaves != after)  # a range's leaves after one that lacked some
                    or tree.root_problem(checkpoints, subtrees)
                ):
                    pool.shutdown(wait=True, cancel_futures=True)
                    undo()
                    return None
                previous, leaves = last, leaves + count
                subtrees = _joined(subtrees, stack, count, after)
                if progress is not None:
                    progress(until - after)
                    reported += until - after
        except BrokenProcessPool:
            logger.warning("verify_audit: a worker process died; the trail is walked in this process")
            undo()
            return None
    return previous, leaves


def _joined(subtrees: list[bytes], stack: list[bytes], count: int, after: int) -> list[bytes]:
    """The complete subtrees of the leaves before ``after`` (``subtrees``) followed by those of
    a range's ``count`` leaves (``stack``): a whole range's leaves form one subtree as large as the
    largest one before it, or smaller, so the two are merged as a binary counter carries."""
    if count != RANGE_SIZE:
        return [*subtrees, *stack]  # the last range with leaves
    joined, node, merged = list(subtrees), stack[0], after // RANGE_SIZE + 1
    while not merged & 1 and joined:
        node = merkle.node_hash(joined.pop(), node)
        merged >>= 1
    joined.append(node)
    return joined


def verify_chain(
    progress: Callable[[int], None] | None = None,
    chunk_size: int = 10_000,
    copies: list[Path] | None = None,
    processes: int = 1,
) -> VerificationResult:
    """Walks every event in order; stops at the first one that breaks the chain.

    ``copies``: other heads files that must hold the heads of ``AUDIT_HEADS_FILE`` (default
    ``AUDIT_HEADS_COPY_FILES``); one holding only its first heads is reported as lagging.
    ``processes`` > 1: ranges of the trail are first checked in that many forked processes
    (outside any transaction: each opens its own connection); when they all vouch for their
    events, the walk is done; otherwise the sequential walk finds the first problem, as it would
    alone.
    """
    result = VerificationResult()
    heads = _load_heads(result, heads_copy_files() if copies is None else copies)
    if heads is None:
        return result
    expected_heads = {head.sequence: head for head in heads}
    # Read before the chain head, as the heads: every checkpoint covers events at or below it.
    checkpoints, problem, missing = load_checkpoints()
    if checkpoints is None:
        result.problem, result.missing_key = problem, missing
        return result
    tree = TreeWalk(0, checkpoints.size, {*checkpoints.roots, checkpoints.size})
    # Read after the heads: every signed head is at or below this head, and events appended
    # while the walk runs (above it) are left to the next verification.
    chain_head = AuditChainHead.objects.get(pk=1)
    previous = GENESIS_HASH
    expected_sequence = 1
    key: bytes | None = None
    keyed = False
    signed = sorted(expected_heads)
    # Normally 0; below it when a row was slipped in before the first event (found as the walk's
    # first problem).
    first = AuditEvent.objects.aggregate(first=Min("sequence"))["first"]
    before = min(0, first - 1) if first is not None else 0
    walked = None
    if processes > 1 and before == 0 and chain_head.sequence > RANGE_SIZE:
        walked = _parallel_walk(chain_head.sequence, expected_heads, checkpoints, processes, progress)
    if walked is not None:
        tree.count, tree.snapshots = walked[1], {}  # the workers compared the roots
        covered = [sequence for sequence in signed if sequence <= chain_head.sequence]
        result.heads_checked = len(covered)
        result.last_signed = expected_heads[covered[-1]] if covered else None
        result.checked = chain_head.sequence
        previous, expected_sequence = walked[0], chain_head.sequence + 1
    for rows in stored_rows(before, before if walked is not None else chain_head.sequence, batch=chunk_size):
        index = 0
        while index < len(rows):
            if keyed and key is not None:
                # The hot loop: a run of keyed events that chain, hash and agree with their columns.
                # The leaves of the run are added to the tree in the same loop.
                run = keyed_run(
                    rows, index, expected_sequence=expected_sequence, previous=previous, key=key, tree=tree
                )
                if run:
                    last = expected_sequence + run - 1
                    for at in signed[
                        bisect.bisect_left(signed, expected_sequence) : bisect.bisect_right(signed, last)
                    ]:
                        signed_head = expected_heads[at]
                        if signed_head.hash != rows[index + at - expected_sequence][2]:
                            result.checked += at - expected_sequence
                            result.broken_sequence = at
                            result.problem = (
                                f"it differs from the head signed at {signed_head.signed_at}: "
                                "the chain was rewritten at or before this event"
                            )
                            return result
                        result.heads_checked += 1
                        result.last_signed = signed_head
                    previous, expected_sequence = rows[index + run - 1][2], last + 1
                    result.checked += run
                    index += run
                    continue
            row = rows[index]
            sequence, digest, mac = row[0], row[2], row[MAC]
            if mac is not None and key is None:
                try:
                    key = mac_key(create=False)
                except (MissingKeyError, ValueError) as exc:
                    result.missing_key = f"{exc}: the events' MACs cannot be checked"
                    return result
            broken = raw_row_problem(row, expected_sequence=expected_sequence, previous=previous)
            if not broken:
                broken = mac_problem(digest, mac, key=key or b"", after_keyed=keyed, allow_legacy=True)
            head = expected_heads.get(sequence)
            if not broken and head is not None:
                if head.hash != digest:
                    broken = (
                        f"it differs from the head signed at {head.signed_at}: "
                        "the chain was rewritten at or before this event"
                    )
                else:
                    result.heads_checked += 1
                    result.last_signed = head
            broken = broken or tree.add(rows, index, index + 1)
            if broken:
                result.broken_sequence = min(sequence, expected_sequence)
                result.problem = broken
                return result
            if mac is None:
                result.legacy += 1
            keyed = keyed or mac is not None
            previous = digest
            expected_sequence += 1
            result.checked += 1
            index += 1
        if progress is not None:
            progress(len(rows))
    last = result.last_sequence = expected_sequence - 1
    result.leaves = tree.count
    tree_problem = tree.root_problem(checkpoints)
    beyond = [head for head in heads if head.sequence > last]
    if beyond:
        result.broken_sequence = last + 1
        result.problem = (
            f"the trail ends at event #{last} but a head was signed at event #{beyond[0].sequence} "
            f"({beyond[0].signed_at}): events were removed"
        )
    elif last < chain_head.sequence:
        result.broken_sequence = last + 1
        result.problem = (
            f"the trail ends at event #{last} but the chain head row says #{chain_head.sequence}: "
            "events were removed"
        )
    elif previous != chain_head.hash:
        result.broken_sequence = last
        result.problem = "it differs from the chain head row: the event was replaced"
    elif tree.count < checkpoints.size:
        result.problem = (
            f"the public log holds {checkpoints.size} leaves but the trail only {tree.count} events: "
            "events were removed"
        )
    elif tree_problem:
        result.problem = tree_problem
    else:
        result.checkpoints = len(checkpoints.roots)
        newest = AuditEvent.objects.aggregate(newest=Max("sequence"))["newest"] or 0
        now_head = AuditChainHead.objects.values_list("sequence", flat=True).get(pk=1)
        if newest > now_head:
            result.broken_sequence = last + 1
            result.problem = (
                f"event #{newest} lies beyond the chain head #{now_head}: it was added behind the "
                "platform's back"
            )
    if not result.problem:
        check_pending(result)
    return result
