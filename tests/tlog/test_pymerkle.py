"""Cross-check against pymerkle 7.0.0 (GPL-3.0, a test-only dependency), a Merkle tree written by
others: on random trees, the roots our two implementations give (``merkle`` over the leaves,
``tiles`` over the stored tiles) are pymerkle's; pymerkle's inclusion paths are ours (after the
leaf hash it puts first); its proofs verify against our roots and ours against its roots.
pymerkle hashes as RFC 9162 only with its default ``security`` (0x00 / 0x01 prefixes; the empty
tree is SHA-256 of nothing); with ``disable_security`` the roots differ, which shows the
comparison can fail."""

import random

import pytest
from pymerkle import InmemoryTree
from pymerkle import verify_consistency as pymerkle_consistency
from pymerkle import verify_inclusion as pymerkle_inclusion

from esante.tlog import merkle, tiles

SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 255, 256, 257, 511, 512, 600]


def random_leaves(rng: random.Random, n: int) -> list[bytes]:
    return [rng.randbytes(rng.choice((0, 1, 32, 77))) for _ in range(n)]


def pymerkle_tree(leaves: list[bytes], **options: bool) -> InmemoryTree:
    tree = InmemoryTree(algorithm="sha256", **options)
    for leaf in leaves:
        tree.append_entry(leaf)
    return tree


@pytest.mark.parametrize("size", SIZES)
def test_roots_and_proofs_agree_with_pymerkle(size: int) -> None:
    rng = random.Random(size)
    leaves = random_leaves(rng, size)
    theirs = pymerkle_tree(leaves)
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
    stored = tiles.MemoryTiles()
    stored.tiles.update(tiles.append_hashes(0, hashes, stored.tile))
    for n in {1, size // 2 or 1, size - 1 or 1, size, rng.randint(1, size)}:
        assert merkle.tree_hash(leaves[:n]) == theirs.get_root(n) == tiles.tree_root(stored, n)
    for index in {0, size - 1, rng.randrange(size)}:
        proof = theirs.prove_inclusion(index + 1, size)  # pymerkle counts leaves from one
        assert proof.path[0] == hashes[index]
        assert proof.path[1:] == merkle.inclusion_proof(index, hashes)
        pymerkle_inclusion(hashes[index], merkle.tree_hash(leaves), proof)
        merkle.verify_inclusion(index, size, hashes[index], proof.path[1:], theirs.get_root(size))
    for old in {1, size // 2 or 1, rng.randint(1, size)}:
        proof = theirs.prove_consistency(old, size)
        pymerkle_consistency(merkle.tree_hash(leaves[:old]), merkle.tree_hash(leaves), proof)
        # pymerkle's consistency path is not laid out as RFC 9162's (it carries the subroots of
        # both trees): each side's proof is checked against the other's roots instead.
        ours = merkle.consistency_proof(old, hashes)
        merkle.verify_consistency(old, size, ours, theirs.get_root(old), theirs.get_root(size))


def test_random_trees_agree_with_pymerkle() -> None:
    rng = random.Random(9162)
    for _ in range(200):
        leaves = random_leaves(rng, rng.randint(0, 300))
        assert merkle.tree_hash(leaves) == pymerkle_tree(leaves).get_root()


def test_without_its_security_prefixes_pymerkle_is_not_rfc_9162() -> None:
    leaves = random_leaves(random.Random(1), 10)
    assert pymerkle_tree(leaves, disable_security=True).get_root() != merkle.tree_hash(leaves)
    assert pymerkle_tree([]).get_root() == merkle.tree_hash([])  # SHA-256 of nothing, both
