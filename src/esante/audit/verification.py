"""Re-computing the chain and checking it against the signed heads (``esante verify_audit``).

Outcomes: the chain is broken (a changed, missing, re-hashed or added event, an event whose MAC
does not match, a forged or reordered heads file, a copy holding a head the heads file lacks or a
different one, a heads file behind the signer's own state); the chain is intact and its last
event is covered by a signed head; the chain is intact *up to the last signed head* and the
events after it are unsigned (nothing but the database vouches for those: someone able to write
to it could have changed, removed or added them consistently, so they are never called intact);
a copy of the heads file lags (holds only the first of the heads: its volume was away, the signer
catches it up); or there is no key to verify with (nothing is created).

Events without a MAC at the start of the trail were written before the MAC column existed: they
are counted as "legacy, unkeyed" (their hash chain and signatures are checked, not their MAC).
"""

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.db.models import Max

from .anchoring import (
    HeadsFileError,
    SignedHead,
    heads_copy_files,
    heads_read_lock,
    read_heads,
    read_signer_state,
)
from .chain import keyed_run, mac_problem, raw_row_problem, stored_rows
from .keys import MissingKeyError, mac_key, verification_public_key
from .models import AuditChainHead, AuditEvent
from .services import GENESIS_HASH


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


def verify_chain(
    progress: Callable[[int], None] | None = None,
    chunk_size: int = 10_000,
    copies: list[Path] | None = None,
) -> VerificationResult:
    """Walks every event in order; stops at the first one that breaks the chain.

    ``copies``: other heads files that must hold the heads of ``AUDIT_HEADS_FILE`` (default
    ``AUDIT_HEADS_COPY_FILES``); one holding only its first heads is reported as lagging.
    """
    result = VerificationResult()
    heads = _load_heads(result, heads_copy_files() if copies is None else copies)
    if heads is None:
        return result
    expected_heads = {head.sequence: head for head in heads}
    # Read after the heads: every signed head is at or below this head, and events appended
    # while the walk runs (above it) are left to the next verification.
    chain_head = AuditChainHead.objects.get(pk=1)
    previous = GENESIS_HASH
    expected_sequence = 1
    key: bytes | None = None
    keyed = False
    signed = sorted(expected_heads)
    for rows in stored_rows(0, chain_head.sequence, batch=chunk_size):
        index = 0
        while index < len(rows):
            if keyed and key is not None:
                # The hot loop: a run of keyed events that chain, hash and agree with their columns.
                run = keyed_run(rows, index, expected_sequence=expected_sequence, previous=previous, key=key)
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
            sequence, digest, mac = row[0], row[2], row[15]
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
    else:
        newest = AuditEvent.objects.aggregate(newest=Max("sequence"))["newest"] or 0
        now_head = AuditChainHead.objects.values_list("sequence", flat=True).get(pk=1)
        if newest > now_head:
            result.broken_sequence = last + 1
            result.problem = (
                f"event #{newest} lies beyond the chain head #{now_head}: it was added behind the "
                "platform's back"
            )
    return result
