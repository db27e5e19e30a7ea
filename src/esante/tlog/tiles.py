"""The tree stored as C2SP tlog-tiles (height 8: 256 hashes a tile), and everything computed from
tiles: the root of any tree size, RFC 9162 inclusion and consistency proofs, and appending
leaves. No Django: a ``TileSource`` gives a tile's stored bytes, from the database or elsewhere.

Tile ``L/N`` holds the hashes at tree level 8L with indexes 256N ... 256N + W - 1 (W = 256 for a
full tile), concatenated. Level 0 tiles hold the leaf hashes. A complete subtree's hash at any
level k is computed from at most 128 hashes of one tile at level k // 8, so a root or a proof
reads at most a few tiles per tile level. A tile only grows, so the first W hashes of a tile
never change once written: a partial tile is a prefix of the tile it becomes.
"""

from collections.abc import Callable, Iterable
from typing import Protocol

from .merkle import HASH_SIZE, node_hash, root_from_hashes

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT


class TileSource(Protocol):
    def tile(self, level: int, index: int) -> bytes:
        """The stored hashes of tile ``level``/``index`` (b"" when there is none yet)."""


class MissingTileError(LookupError):
    """A hash the tree size asks for is not in the tiles (the tree is shorter than that)."""


def encode_index(index: int) -> str:
    """A tile index as a C2SP path: 3-digit groups, all but the last prefixed with ``x``."""
    if index < 0:
        raise ValueError("negative tile index")
    groups = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        groups.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(groups))


def parse_index(text: str) -> int:
    """The inverse of ``encode_index``; raises ValueError for any other spelling."""
    groups = text.split("/")
    value = 0
    for position, group in enumerate(groups):
        last = position == len(groups) - 1
        digits = group if last else group.removeprefix("x")
        if (not last and not group.startswith("x")) or len(digits) != 3 or not digits.isdigit():
            raise ValueError(f"malformed tile index {text!r}")
        value = value * 1000 + int(digits)
    return value


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    suffix = "" if width == TILE_WIDTH else f".p/{width}"
    return f"tile/{level}/{encode_index(index)}{suffix}"


def subtree_hash(source: TileSource, level: int, index: int) -> bytes:
    """The hash of the complete subtree of 2**level leaves starting at leaf index * 2**level."""
    tile_level = level // TILE_HEIGHT
    count = 1 << (level - tile_level * TILE_HEIGHT)
    first = index * count
    offset = first % TILE_WIDTH
    data = source.tile(tile_level, first // TILE_WIDTH)
    if len(data) < (offset + count) * HASH_SIZE:
        raise MissingTileError(f"no hash at level {level} index {index} in the tiles")
    hashes = [data[(offset + j) * HASH_SIZE : (offset + j + 1) * HASH_SIZE] for j in range(count)]
    return hashes[0] if count == 1 else root_from_hashes(hashes)


def range_hash(source: TileSource, start: int, end: int) -> bytes:
    """MTH of the leaves [start, end), where ``start`` is a multiple of a power of two that is at
    least ``end - start`` (as in every range the RFC 9162 recursion visits, and [0, n))."""
    if start >= end:
        raise ValueError("empty range")
    parts: list[bytes] = []
    position = start
    while position < end:
        by_alignment = (position & -position).bit_length() - 1 if position else 64
        level = min(by_alignment, (end - position).bit_length() - 1)
        parts.append(subtree_hash(source, level, position >> level))
        position += 1 << level
    node = parts.pop()
    while parts:
        node = node_hash(parts.pop(), node)
    return node


def tree_root(source: TileSource, size: int) -> bytes:
    return root_from_hashes([]) if size == 0 else range_hash(source, 0, size)


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof(source: TileSource, index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) (RFC 9162 §2.1.3.1) from the tiles."""
    if not 0 <= index < size:
        raise ValueError("leaf index out of range")

    def path(lo: int, hi: int) -> list[bytes]:
        if hi - lo == 1:
            return []
        k = _split(hi - lo)
        if index < lo + k:
            return [*path(lo, lo + k), range_hash(source, lo + k, hi)]
        return [*path(lo + k, hi), range_hash(source, lo, lo + k)]

    return path(0, size)


def consistency_proof(source: TileSource, old_size: int, size: int) -> list[bytes]:
    """PROOF(old_size, D[size]) (RFC 9162 §2.1.4.1) from the tiles; empty for 0 or equal sizes."""
    if not 0 <= old_size <= size:
        raise ValueError("tree sizes out of range")
    if old_size in (0, size):
        return []

    def sub(m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        if m == hi - lo:
            return [] if complete else [range_hash(source, lo, hi)]
        k = _split(hi - lo)
        if m <= k:
            return [*sub(m, lo, lo + k, complete), range_hash(source, lo + k, hi)]
        return [*sub(m - k, lo + k, hi, False), range_hash(source, lo, lo + k)]

    return sub(old_size, 0, size, True)


def append_hashes(
    size: int, leaf_hashes: Iterable[bytes], load: Callable[[int, int], bytes]
) -> dict[tuple[int, int], bytes]:
    """Appends leaf hashes to a tree of ``size`` leaves: the tiles that change, as
    {(level, index): new bytes}. ``load`` gives a stored tile; only the rightmost partial tile of
    each level is read. A tile that fills up adds its root to the level above."""
    changed: dict[tuple[int, int], bytes] = {}
    pending = list(leaf_hashes)
    level = 0
    while pending:
        count = size >> (TILE_HEIGHT * level)  # hashes already at tree level 8 * level
        index, offset = divmod(count, TILE_WIDTH)
        current = bytearray(load(level, index) if offset else b"")
        if len(current) != offset * HASH_SIZE:
            raise MissingTileError(
                f"tile {level}/{index} holds {len(current) // HASH_SIZE} hashes, not {offset}"
            )
        above: list[bytes] = []
        for digest in pending:
            current += digest
            if len(current) == TILE_WIDTH * HASH_SIZE:
                changed[(level, index)] = bytes(current)
                above.append(
                    root_from_hashes([current[j : j + HASH_SIZE] for j in range(0, len(current), HASH_SIZE)])
                )
                index, current = index + 1, bytearray()
        if current:
            changed[(level, index)] = bytes(current)
        pending, level = above, level + 1
    return changed


class MemoryTiles:
    """Tiles held in a dict, over an optional fallback source (the sequencer's batch: the tiles it
    changed, over the stored ones)."""

    def __init__(self, tiles: dict[tuple[int, int], bytes] | None = None, under: TileSource | None = None):
        self.tiles = tiles if tiles is not None else {}
        self.under = under

    def tile(self, level: int, index: int) -> bytes:
        found = self.tiles.get((level, index))
        if found is not None:
            return found
        return self.under.tile(level, index) if self.under is not None else b""
