"""Tiles: C2SP paths, appending in batches of any size, and roots and proofs computed from tiles,
checked against the plain list implementation (itself checked against the published vectors)."""

import hashlib
import random

import pytest

from esante.tlog import merkle, tiles


def _hashes(n: int, seed: int = 0) -> list[bytes]:
    return [hashlib.sha256(f"{seed}:{i}".encode()).digest() for i in range(n)]


def _grow(sizes: list[int]) -> tuple[tiles.MemoryTiles, list[bytes]]:
    store = tiles.MemoryTiles()
    all_hashes: list[bytes] = []
    for step, count in enumerate(sizes):
        new = _hashes(count, seed=step)
        store.tiles.update(tiles.append_hashes(len(all_hashes), new, store.tile))
        all_hashes += new
    return store, all_hashes


@pytest.mark.parametrize(
    ("index", "path"),
    [(0, "000"), (7, "007"), (999, "999"), (1000, "x001/000"), (1234067, "x001/x234/067")],
)
def test_tile_index_paths(index: int, path: str) -> None:
    assert tiles.encode_index(index) == path
    assert tiles.parse_index(path) == index


@pytest.mark.parametrize("bad", ["1", "0000", "x000", "001/000", "x001/x02/000", "x001/abc", "", "x1/000"])
def test_malformed_tile_indexes_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        tiles.parse_index(bad)


def test_tile_path_shape() -> None:
    assert tiles.tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tiles.tile_path(1, 0, 5) == "tile/1/000.p/5"


def test_tiles_hold_each_level_in_256_hash_rows() -> None:
    store, hashes = _grow([256 * 256 + 300])
    assert store.tiles[(0, 0)] == b"".join(hashes[:256])
    assert len(store.tiles[(0, 256)]) == 256 * 32
    assert len(store.tiles[(0, 257)]) == 44 * 32  # the partial rightmost tile
    assert store.tiles[(1, 0)][:32] == merkle.root_from_hashes(hashes[:256])
    assert len(store.tiles[(1, 0)]) == 256 * 32  # full: 256 complete level-8 subtrees
    assert store.tiles[(2, 0)] == merkle.root_from_hashes(hashes[: 256 * 256])
    assert len(store.tiles[(1, 1)]) == 32  # leaves 65,536..65,791, complete


def test_roots_from_tiles_match_the_reference_at_every_size() -> None:
    store, hashes = _grow([1, 2, 253, 1, 1, 300, 7])
    for size in range(len(hashes) + 1):
        assert tiles.tree_root(store, size) == merkle.root_from_hashes(hashes[:size])


def test_proofs_from_tiles_match_the_reference_and_verify() -> None:
    rng = random.Random(14)
    store, hashes = _grow([rng.randrange(1, 700) for _ in range(6)])
    for _ in range(300):
        size = rng.randrange(1, len(hashes) + 1)
        index = rng.randrange(size)
        root = merkle.root_from_hashes(hashes[:size])
        proof = tiles.inclusion_proof(store, index, size)
        assert proof == merkle.inclusion_proof(index, hashes[:size])
        merkle.verify_inclusion(index, size, hashes[index], proof, root)
        old = rng.randrange(1, size + 1)
        consistency = tiles.consistency_proof(store, old, size)
        assert consistency == merkle.consistency_proof(old, hashes[:size])
        merkle.verify_consistency(old, size, consistency, merkle.root_from_hashes(hashes[:old]), root)


def test_a_size_beyond_the_tiles_is_refused() -> None:
    store, hashes = _grow([10])
    with pytest.raises(tiles.MissingTileError):
        tiles.tree_root(store, 11)
    with pytest.raises(ValueError):
        tiles.inclusion_proof(store, 10, 10)
    with pytest.raises(ValueError):
        tiles.consistency_proof(store, 5, 4)


def test_append_refuses_a_tile_that_does_not_match_the_size() -> None:
    store, _ = _grow([10])
    with pytest.raises(tiles.MissingTileError):
        tiles.append_hashes(12, _hashes(1), store.tile)
