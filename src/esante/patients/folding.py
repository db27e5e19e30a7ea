"""Name folding for search: case- and accent-insensitive, punctuation-insensitive.

``Müller`` and ``MULLER`` fold to ``MULLER``; ``Gonçalves`` to ``GONCALVES``; ``Weiß`` to
``WEISS``; hyphens and apostrophes become spaces (``Dupont-Martin`` -> ``DUPONT MARTIN``).
The folded value is stored in its own indexed column and searched with a range predicate,
so a prefix search is an index range scan on SQLite and PostgreSQL alike.
"""

import unicodedata


def fold(value: str) -> str:
    decomposed = unicodedata.normalize("NFKD", value or "")
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).upper()
    cleaned = "".join(ch if ch.isalnum() else " " for ch in stripped)
    # Letters outside Latin (after folding) are kept as they are; only whitespace is collapsed.
    return " ".join(cleaned.split())


def prefix_upper_bound(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix`` (ASCII order)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)
