"""Re-computing the chain and checking it against the signed heads (``esante verify_audit``).

Three outcomes: the chain is broken (a changed, missing, re-hashed or added event, a forged or
reordered heads file, heads files that disagree); the chain is intact and its last event is
covered by a signed head; or the chain is intact *up to the last signed head* and the events
after it are unsigned. Nothing but the database vouches for those: someone able to write to it
could have changed, removed or added them consistently, so they are never called intact.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.db.models import Max

from .anchoring import HeadsFileError, SignedHead, heads_copy_files, load_or_create_key, read_heads
from .chain import COLUMNS, row_problem
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

    @property
    def ok(self) -> bool:
        """No event was found changed, missing or added (unsigned events may remain)."""
        return not self.problem

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


def _heads_disagreement(
    first: list[SignedHead], first_path: Path, second: list[SignedHead], path: Path
) -> str:
    """The first signed head (lowest sequence) that one file holds and the other does not."""

    def keys(heads: list[SignedHead]) -> set[tuple[int, str, str, str]]:
        return {(head.sequence, head.hash, head.signed_at, head.signature) for head in heads}

    only_first, only_second = keys(first) - keys(second), keys(second) - keys(first)
    if not only_first and not only_second:
        return ""
    missing = min(only_first | only_second)
    holder, lacking = (first_path, path) if missing in only_first else (path, first_path)
    return f"head #{missing[0]} ({missing[2]}) is in {holder} but not in {lacking}"


def _load_heads(result: VerificationResult, copies: list[Path]) -> list[SignedHead] | None:
    """All signed heads, checked for signatures and for agreement between the heads files."""
    from django.conf import settings

    public_key = load_or_create_key().public_key()
    primary: Path = settings.AUDIT_HEADS_FILE
    try:
        heads = read_heads(public_key, primary)
        for copy in copies:
            if not copy.exists():
                result.problem = f"the heads file copy {copy} does not exist"
                return None
            disagreement = _heads_disagreement(heads, primary, read_heads(public_key, copy), copy)
            if disagreement:
                result.problem = f"the heads files disagree: {disagreement}"
                return None
    except HeadsFileError as exc:
        result.problem = str(exc)
        return None
    return heads


def verify_chain(
    progress: Callable[[int], None] | None = None,
    chunk_size: int = 10_000,
    copies: list[Path] | None = None,
) -> VerificationResult:
    """Walks every event in order; stops at the first one that breaks the chain.

    ``copies``: other heads files that must hold exactly the heads of ``AUDIT_HEADS_FILE``
    (default ``AUDIT_HEADS_COPY_FILES``).
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
    rows = (
        AuditEvent.objects.filter(sequence__lte=chain_head.sequence)
        .order_by("sequence")
        .values_list(*COLUMNS)
        .iterator(chunk_size=chunk_size)
    )
    for row in rows:
        sequence, digest = row[0], row[2]
        broken = row_problem(row, expected_sequence=expected_sequence, previous=previous)
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
        previous = digest
        expected_sequence += 1
        result.checked += 1
        if progress is not None and result.checked % chunk_size == 0:
            progress(chunk_size)
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
