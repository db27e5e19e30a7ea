"""Reading the stored tree: tiles from the database (cached per reader), the state row."""

from .merkle import HASH_SIZE, root_from_hashes
from .models import LogState, LogTile
from .tiles import TILE_WIDTH

EMPTY_ROOT = root_from_hashes([])
GENESIS_HASH = "0" * 64


class DatabaseTiles:
    """A ``TileSource`` over ``LogTile``; each tile read once per reader. Tiles only grow and a
    full one never changes, so a cached tile stays true; a reader is made per request or batch."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int], bytes] = {}

    def tile(self, level: int, index: int) -> bytes:
        key = (level, index)
        if key not in self._cache:
            stored = LogTile.objects.filter(level=level, index=index).values_list("hashes", flat=True).first()
            self._cache[key] = bytes(stored) if stored is not None else b""
        return self._cache[key]


def tile_bytes(level: int, index: int, width: int = TILE_WIDTH) -> bytes | None:
    """The first ``width`` hashes of a stored tile; None when it holds fewer."""
    stored = LogTile.objects.filter(level=level, index=index).values_list("hashes", flat=True).first()
    if stored is None or len(stored) < width * HASH_SIZE:
        return None
    return bytes(stored)[: width * HASH_SIZE]


def log_state(*, for_update: bool = False) -> LogState:
    """The state row, created on first use (a fresh database, or a test's flushed one)."""
    LogState.objects.get_or_create(pk=1, defaults={"root": EMPTY_ROOT, "last_hash": GENESIS_HASH})
    queryset = LogState.objects.select_for_update() if for_update else LogState.objects
    return queryset.get(pk=1)
