"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing and proofs, §2.1.

Leaf hash ``SHA-256(0x00 || leaf)``, interior node ``SHA-256(0x01 || left || right)``, the empty
tree's hash ``SHA-256("")``. Proofs are lists of 32-byte hashes; verification follows §2.1.3.2
(inclusion) and §2.1.4.2 (consistency) and raises ``ProofError`` on any mismatch.
"""

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32


class ProofError(Exception):
    """A proof that does not verify (wrong length, wrong hashes, sizes out of range)."""


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves (RFC 9162 §2.1.1), iteratively with a stack of subtrees."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    stack: list[tuple[int, bytes]] = []  # (subtree size, hash), sizes strictly decreasing
    for h in hashes:
        size, node = 1, h
        while stack and stack[-1][0] == size:
            node = node_hash(stack.pop()[1], node)
            size *= 2
        stack.append((size, node))
    node = stack.pop()[1]
    while stack:
        node = node_hash(stack.pop()[1], node)
    return node


def tree_hash(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of raw leaves."""
    return root_from_hashes([leaf_hash(leaf) for leaf in leaves])


def inclusion_proof(index: int, hashes: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) (§2.1.3.1) over hashed leaves."""
    if not 0 <= index < len(hashes):
        raise ValueError("index out of range")
    if len(hashes) == 1:
        return []
    k = _split(len(hashes))
    if index < k:
        return [*inclusion_proof(index, hashes[:k]), root_from_hashes(hashes[k:])]
    return [*inclusion_proof(index - k, hashes[k:]), root_from_hashes(hashes[:k])]


def consistency_proof(old_size: int, hashes: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) (§2.1.4.1) over hashed leaves; empty for m == 0 or m == n."""
    if not 0 <= old_size <= len(hashes):
        raise ValueError("size out of range")
    if old_size in (0, len(hashes)):
        return []
    return _subproof(old_size, hashes, complete=True)


def _subproof(m: int, hashes: Sequence[bytes], *, complete: bool) -> list[bytes]:
    n = len(hashes)
    if m == n:
        return [] if complete else [root_from_hashes(hashes)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, hashes[:k], complete=complete), root_from_hashes(hashes[k:])]
    return [*_subproof(m - k, hashes[k:], complete=False), root_from_hashes(hashes[:k])]


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Checks that ``leaf`` (a leaf hash) is at ``index`` in the tree of ``size`` with ``root``."""
    if not 0 <= index < size:
        raise ProofError("leaf index out of range")
    if len(leaf) != HASH_SIZE or any(len(p) != HASH_SIZE for p in proof):
        raise ProofError("malformed hash")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("proof too short")
    if r != root:
        raise ProofError("root mismatch")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Checks that the tree of ``size2`` with ``root2`` extends the tree of ``size1`` with ``root1``."""
    if not 0 < size1 <= size2:  # as transparency-dev/merkle: nothing to prove from the empty tree
        raise ProofError("sizes out of order (or the old tree is empty)")
    if any(len(p) != HASH_SIZE for p in proof):
        raise ProofError("malformed hash")
    if size1 == size2:
        if proof:
            raise ProofError("proof must be empty for equal sizes")
        if root1 != root2:
            raise ProofError("roots differ for equal sizes")
        return
    if not proof:
        raise ProofError("empty proof")
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("proof too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("proof too short")
    if fr != root1 or sr != root2:
        raise ProofError("root mismatch")
