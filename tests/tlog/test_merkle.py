"""Known-answer tests of the RFC 9162 Merkle tree (vectors from transparency-dev/merkle, see
vectors/ORIGIN.md) and round trips of our own proofs on random trees."""

import base64
import json
import random
from pathlib import Path

import pytest

from esante.tlog import merkle

VECTORS = Path(__file__).parent / "vectors"
# The eight RFC 6962 reference leaves the vectors are built on.
LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
# Roots of the first 1..8 reference leaves (transparency-dev/merkle proof/verify_test.go).
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def _b(value: str) -> bytes:
    return base64.b64decode(value)


def _cases(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json"))


def test_reference_hashes() -> None:
    assert merkle.tree_hash([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert (
        merkle.leaf_hash(b"L123456").hex()
        == "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    )
    assert (
        merkle.node_hash(b"N123", b"N456").hex()
        == "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )
    for size, root in enumerate(ROOTS, start=1):
        assert merkle.tree_hash(LEAVES[:size]).hex() == root


@pytest.mark.parametrize("path", _cases("inclusion"), ids=lambda p: str(p.relative_to(VECTORS)))
def test_inclusion_vectors(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (case["leafIdx"], case["treeSize"], _b(case["leafHash"]), [_b(p) for p in case["proof"] or []])
    if case["wantErr"]:
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(*args, _b(case["root"]))
    else:
        merkle.verify_inclusion(*args, _b(case["root"]))
        hashes = [merkle.leaf_hash(leaf) for leaf in LEAVES[: case["treeSize"]]]
        assert merkle.inclusion_proof(case["leafIdx"], hashes) == args[3]


@pytest.mark.parametrize("path", _cases("consistency"), ids=lambda p: str(p.relative_to(VECTORS)))
def test_consistency_vectors(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (
        case["size1"],
        case["size2"],
        [_b(p) for p in case["proof"] or []],
        _b(case["root1"]),
        _b(case["root2"]),
    )
    if case["wantErr"]:
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)
        if 0 < case["size2"] <= len(LEAVES):
            hashes = [merkle.leaf_hash(leaf) for leaf in LEAVES[: case["size2"]]]
            assert merkle.consistency_proof(case["size1"], hashes) == args[2]


def test_random_trees_round_trip() -> None:
    rng = random.Random(14)
    for _ in range(40):
        n = rng.randint(1, 70)
        hashes = [merkle.leaf_hash(rng.randbytes(rng.randint(0, 40))) for _ in range(n)]
        root = merkle.root_from_hashes(hashes)
        for i in rng.sample(range(n), min(n, 5)):
            proof = merkle.inclusion_proof(i, hashes)
            merkle.verify_inclusion(i, n, hashes[i], proof, root)
            with pytest.raises(merkle.ProofError):
                merkle.verify_inclusion(i, n, merkle.leaf_hash(b"other"), proof, root)
        m = rng.randint(1, n)
        old_root = merkle.root_from_hashes(hashes[:m])
        proof = merkle.consistency_proof(m, hashes)
        merkle.verify_consistency(m, n, proof, old_root, root)
        if m < n:
            with pytest.raises(merkle.ProofError):
                merkle.verify_consistency(m, n, proof, merkle.leaf_hash(b"fork"), root)
