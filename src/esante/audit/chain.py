"""The checks one stored event must pass to belong to the chain, shared by ``verify_audit`` (the
whole chain) and the signer (the stretch it is about to sign).

MACs: every event written by ``audit_record`` carries HMAC-SHA256(MAC key, hash). Events written
before the column existed have none ("legacy, unkeyed"); they can only come first, so an event
without a MAC after one with a MAC was added or rewritten behind the platform's back.
"""

import datetime
import hashlib
import hmac
import json
import operator
from collections.abc import Callable, Iterator
from typing import Any

from django.db import connection

from esante.tlog.leaf import SALT_BYTES

from .keys import mac_matches
from .models import AuditEvent

# Columns that repeat the canonical content; a change to one of them behind the triggers' back
# is found by comparing it with the canonical bytes.
COLUMNS = (
    "sequence",
    "prev_hash",
    "hash",
    "canonical",
    "created_at",
    "actor_id",
    "actor_label",
    "action",
    "outcome",
    "patient_id",
    "object_type",
    "object_id",
    "motif",
    "client_address",
    "details",
    "mac",
)


def row_problem(row: tuple[Any, ...], *, expected_sequence: int, previous: str) -> str:
    """Why the stored row ``row`` (values of ``COLUMNS``) cannot follow the event hashed
    ``previous`` at position ``expected_sequence``; "" when it can."""
    sequence, prev_hash, digest, canonical = row[:4]
    if sequence != expected_sequence:
        return f"the event is missing (the next stored event is #{sequence})"
    if prev_hash != previous:
        return "it does not link to the previous event's hash"
    if hashlib.sha256(canonical.encode("utf-8")).hexdigest() != digest:
        return "its hash does not match its content"
    content = json.loads(canonical)
    created_at, actor_id, actor_label, action, outcome, patient_id = row[4:10]
    object_type, object_id, motif, client_address, details = row[10:15]
    if (
        content["seq"] != sequence
        or content["prev"] != prev_hash
        or content["time"] != created_at.astimezone(datetime.UTC).isoformat()
        or content["actor"] != actor_id
        or content["actor_label"] != actor_label
        or content["action"] != action
        or content["outcome"] != outcome
        or content["patient"] != patient_id
        or content["object_type"] != object_type
        or content["object_id"] != object_id
        or content["motif"] != motif
        or content["client_address"] != client_address
        or content["details"] != details
    ):
        return "its columns differ from its hashed content"
    return ""


def mac_problem(digest: str, mac: str | None, *, key: bytes, after_keyed: bool, allow_legacy: bool) -> str:
    """Why an event hashed ``digest`` with the stored ``mac`` fails its MAC check; "" when it
    passes. ``after_keyed``: an earlier event has a MAC. ``allow_legacy``: a NULL MAC before any
    keyed event passes (``verify_audit`` counts it; the signer signs it only when told to)."""
    if mac is None:
        if after_keyed:
            return "it has no MAC although earlier events have one: it was added or rewritten"
        if not allow_legacy:
            return "it has no MAC (a legacy, unkeyed event: sign it with `esante anchor_audit --initial`)"
        return ""
    if not mac_matches(digest, mac, key):
        return "its MAC does not match: it was forged or rewritten without the MAC key"
    return ""


def segment_problem(
    *, after: int, after_hash: str, upto: int, upto_hash: str, key: bytes, allow_legacy: bool = False
) -> str:
    """Why the events after #``after`` (hashed ``after_hash``) up to #``upto`` do not form an
    unbroken chain of events with valid MACs ending in ``upto_hash``; "" when they do. Reads only
    that stretch (and event #``after``'s MAC)."""
    previous, expected = after_hash, after + 1
    keyed = after > 0 and AuditEvent.objects.filter(sequence=after).exclude(mac=None).exists()
    for rows in stored_rows(after, upto):
        index = 0
        while index < len(rows):
            if keyed:  # the hot loop, as ``verify_audit``'s
                run = keyed_run(rows, index, expected_sequence=expected, previous=previous, key=key)
                if run:
                    previous, expected, index = rows[index + run - 1][2], expected + run, index + run
                    continue
            row = rows[index]
            problem = raw_row_problem(row, expected_sequence=expected, previous=previous) or mac_problem(
                row[2], row[4], key=key, after_keyed=keyed, allow_legacy=allow_legacy
            )
            if problem:
                return f"event #{min(row[0], expected)}: {problem}"
            previous, expected, index = row[2], expected + 1, index + 1
            keyed = keyed or row[4] is not None
    if expected != upto + 1:
        return f"event #{expected} is missing (the chain head says #{upto})"
    if previous != upto_hash:
        return f"event #{upto} differs from the chain head"
    return ""


# Where ``stored_rows`` puts each value in a row.
SEQUENCE, PREV_HASH, HASH, CANONICAL, MAC, HEAD, TAIL, DETAILS = range(8)
LEAF_INDEX, LEAF_SALT, LEAF_COMMITMENT = range(8, 11)


def _projection(vendor: str) -> tuple[str, str, str]:
    """SQL giving, from an event's columns, the canonical text up to its ``details`` value (the
    head), the text after it (the tail), and ``details`` as text: the database renders the
    columns as ``canonical_bytes`` writes them, so the hot loop compares two strings instead of
    formatting a dozen values. Any value the SQL cannot render as ``canonical_bytes`` would
    (another type behind SQLite's back, an unusual date) gives NULL or another text: the row
    is then judged by ``row_problem``, never vouched for.

    ``stored_rows`` no longer uses it: the expressions cost more than the same work in Python
    (SQLite's run in this process; PostgreSQL's took twice the server's time of reading the
    rows), so it reads the raw columns and ``_render`` renders them. Kept as the reference the
    tests compare that rendering with."""
    quote = connection.ops.quote_name

    def column(name: str) -> str:
        return f"e.{quote(name)}"

    if vendor == "sqlite":

        def text(name: str, nullable: bool = False) -> str:  # a JSON string, only from a text value
            null = " WHEN 'null' THEN 'null'" if nullable else ""
            return f"CASE typeof({column(name)}) WHEN 'text' THEN json_quote({column(name)}){null} END"

        def number(name: str) -> str:
            return (
                f"CASE typeof({column(name)}) WHEN 'integer' THEN {column(name)} WHEN 'null' THEN 'null' END"
            )

        # Stored as naive UTC text, "YYYY-MM-DD HH:MM:SS[.ffffff]".
        time = (
            f"CASE typeof({column('created_at')}) WHEN 'text' "
            f"THEN json_quote(replace({column('created_at')}, ' ', 'T') || '+00:00') END"
        )
        # As stored (Django's json.dumps): parsed in Python, cheaper than SQLite's json_valid + json.
        details = column("details")
        sequence = number("sequence")
    else:

        def text(name: str, nullable: bool = False) -> str:
            # The type's output function, as the driver reads it (an inet's "/32" left out).
            rendered = f"to_json({column(name)})::text"
            return f"coalesce({rendered}, 'null')" if nullable else rendered

        def number(name: str) -> str:
            return f"coalesce({column(name)}::text, 'null')"

        time = (
            f"to_json(replace(to_char({column('created_at')} AT TIME ZONE 'UTC', "
            "'YYYY-MM-DD\"T\"HH24:MI:SS.US'), '.000000', '') || '+00:00')::text"
        )
        details = f"{column('details')}::text"
        sequence = f"{column('sequence')}::text"
    head = (
        f"""'{{"action":' || {text("action")} || ',"actor":' || {number("actor_id")} || """
        f"""',"actor_label":' || {text("actor_label")} || ',"client_address":' || """
        f"""{text("client_address", nullable=True)} || ',"details":'"""
    )
    tail = (
        f"""',"motif":' || {text("motif")} || ',"object_id":' || {text("object_id")} || """
        f"""',"object_type":' || {text("object_type")} || ',"outcome":' || {text("outcome")} || """
        f"""',"patient":' || {number("patient_id")} || ',"prev":' || {text("prev_hash")} || """
        f"""',"seq":' || {sequence} || ',"time":' || {time} || '}}'"""
    )
    return head, tail, details


# The raw columns ``stored_rows`` reads between the MAC and the leaf, rendered by ``_render``.
_RAW = (
    "action",
    "actor_id",
    "actor_label",
    "client_address",
    "motif",
    "object_id",
    "object_type",
    "outcome",
    "patient_id",
    "created_at",
    "details",
)
# ``canonical_bytes``'s own string encoder (json.dumps with ensure_ascii=False).
_quote = json.encoder.encode_basestring  # type: ignore[attr-defined]
_RENDERED_LIMIT = 4096  # distinct heads and tails kept: the columns repeat, the cache stays small


def _text(value: Any, nullable: bool = False) -> str | None:
    """A JSON string from a text value, as ``canonical_bytes`` writes it; None (no rendering:
    the row is judged by ``row_problem``) for any other type."""
    if type(value) is str:
        return str(_quote(value))
    if nullable and value is None:
        return "null"
    return None


def _number(value: Any) -> str | None:
    if type(value) is int:
        return str(value)
    return "null" if value is None else None


def _render_head(action: Any, actor: Any, actor_label: Any, address: Any) -> str | None:
    parts = (_text(action), _number(actor), _text(actor_label), _text(address, nullable=True))
    if None in parts:
        return None
    return '{{"action":{},"actor":{},"actor_label":{},"client_address":{},"details":'.format(*parts)


def _render_middle(motif: Any, object_id: Any, object_type: Any, outcome: Any, patient: Any) -> str | None:
    parts = (_text(motif), _text(object_id), _text(object_type), _text(outcome), _number(patient))
    if None in parts:
        return None
    return ',"motif":{},"object_id":{},"object_type":{},"outcome":{},"patient":{}'.format(*parts)


def _time_sqlite(stored: Any) -> str | None:
    """The canonical time (a JSON string) of a ``created_at`` SQLite stores as naive UTC text,
    "YYYY-MM-DD HH:MM:SS[.ffffff]", as ``_projection`` renders it."""
    if type(stored) is not str:
        return None
    return str(_quote(stored.replace(" ", "T") + "+00:00"))


def _time_postgresql(text: Any) -> str | None:
    """The canonical time (a JSON string: ``isoformat`` in UTC) of a ``created_at`` read as the
    text of the UTC timestamp, "YYYY-MM-DD HH:MM:SS[.f...]" (PostgreSQL drops the fraction's
    trailing zeros; ``isoformat`` writes six digits, or none for a whole second). Any other form
    (another DateStyle, a year past 9999, BC) gives None."""
    if type(text) is not str:
        return None
    size = len(text)
    if size == 19 and text[10] == " ":
        return f'"{text[:10]}T{text[11:]}+00:00"'
    if 21 <= size <= 26 and text[10] == " " and text[19] == ".":
        return f'"{text[:10]}T{text[11:]}{"0" * (26 - size)}+00:00"'
    return None


def _render(
    raw: list[tuple[Any, ...]],
    heads: dict[Any, Any],
    middles: dict[Any, Any],
    _time: Callable[[Any], str | None],
) -> list[tuple[Any, ...]]:
    """The rows of ``stored_rows`` from the raw columns (``_RAW``, between the MAC and the
    leaf): the head and tail rendered here as ``_projection``'s SQL renders them (and as
    ``canonical_bytes`` writes them), from the values' own types, so that a value of another type
    stored behind the model's back gives no rendering (the row is then judged by ``row_problem``).
    The heads and the tails' parts that repeat (actor, action, object, motif...) are rendered once
    per distinct value (the caches ``heads`` and ``middles``: equal keys are equal values, as
    ``row_problem`` compares them); the sequence, previous hash and time for each row."""
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    for (
        sequence,
        prev_hash,
        digest,
        canonical,
        mac,
        action,
        actor,
        actor_label,
        address,
        motif,
        object_id,
        object_type,
        outcome,
        patient,
        created_at,
        details,
        index,
        salt,
        commitment,
    ) in raw:
        shown = (action, actor, actor_label, address)
        head = heads.get(shown, heads)
        if head is heads:
            head = _render_head(*shown)
            if len(heads) < _RENDERED_LIMIT:
                heads[shown] = head
        about = (motif, object_id, object_type, outcome, patient)
        middle = middles.get(about, middles)
        if middle is middles:
            middle = _render_middle(*about)
            if len(middles) < _RENDERED_LIMIT:
                middles[about] = middle
        tail = None
        if (
            middle is not None
            and type(prev_hash) is str
            and type(sequence) is int
            and (time := _time(created_at)) is not None
        ):
            tail = f'{middle},"prev":{_quote(prev_hash)},"seq":{sequence},"time":{time}}}'
        append((sequence, prev_hash, digest, canonical, mac, head, tail, details, index, salt, commitment))
    return rows


def stored_rows(after: int, upto: int, batch: int = 10_000) -> Iterator[list[tuple[Any, ...]]]:
    """The stored rows of the events after #``after`` up to #``upto``, in order, ``batch``
    sequence numbers at a time, as the database driver returns them: per event, its sequence,
    previous hash, hash, canonical text, MAC, the head and tail ``_render`` renders from its
    other columns as ``_projection`` would and its ``details`` as text, then its public log leaf (index, salt,
    commitment; None when it has none). ``SEQUENCE`` ... ``LEAF_COMMITMENT`` name the positions.

    Read by ranges of the sequence index, so memory stays constant whatever the trail's length.
    Events not chained yet (sequence NULL) are not read.
    """
    from esante.tlog.models import LogLeaf  # the public log's leaves, read in the same pass

    quote = connection.ops.quote_name
    sqlite = connection.vendor == "sqlite"
    if sqlite:  # the raw columns, rendered in Python
        # "+": SQLite's no-op operator, so that the value comes as stored, of its own type (Django
        # registers a converter for the declared type of ``created_at``: no datetime parsed here).
        rendered = ", ".join(f"+e.{quote(name)}" for name in _RAW)
    else:  # as text, in the forms ``_time`` and the model read
        casts = {
            # The inet's output function, as the driver gives it to the model (a cast to text
            # would add the "/32" or "/128").
            "client_address": "abbrev(e.{})",
            "created_at": "(e.{} AT TIME ZONE 'UTC')::text",  # "YYYY-MM-DD HH:MM:SS[.f...]"
            "details": "e.{}::text",
        }
        rendered = ", ".join(casts.get(name, "e.{}").format(quote(name)) for name in _RAW)
    heads: dict[Any, Any] = {}
    middles: dict[Any, Any] = {}
    table, leaves = quote(AuditEvent._meta.db_table), quote(LogLeaf._meta.db_table)
    sequence = f"e.{quote('sequence')}"
    columns = ", ".join(f"e.{quote(name)}" for name in ("sequence", "prev_hash", "hash", "canonical", "mac"))
    sql = (
        f"SELECT {columns}, {rendered}, l.{quote('index')}, l.{quote('salt')}, "  # noqa: S608 (constants)
        f"l.{quote('commitment')} FROM {table} e "
        # The leaf of event #n is leaf n - 1: only the leaves of the range are joined (the
        # plan stays two short index ranges; a leaf anywhere else is missing where it belongs).
        f"LEFT JOIN {leaves} l ON l.{quote('event_id')} = e.{quote('id')} "
        f"AND l.{quote('index')} >= %s AND l.{quote('index')} < %s "
        # Ordered here, not by the database: a sort of rows this wide spills to disk on PostgreSQL.
        f"WHERE {sequence} > %s AND {sequence} <= %s"
    )
    following = (
        f"SELECT MIN({quote('sequence')}) FROM {table} "  # noqa: S608 (constants)
        f"WHERE {quote('sequence')} IS NOT NULL AND {quote('sequence')} > %s"
    )
    with connection.cursor() as cursor:
        # Ranges of the sequence, not LIMIT: the plan stays a short index range whatever the
        # table's statistics say (a fresh table's would sort the whole rest for each batch).
        while after < upto:
            until = min(after + batch, upto)
            cursor.execute(sql, [after, until, after, until])
            rows = cursor.fetchall()
            if rows:
                rows = _render(rows, heads, middles, _time_sqlite if sqlite else _time_postgresql)
                rows.sort(key=_sequence)
                yield rows
                after = until
                continue
            # A gap (events removed, or a head row moved far ahead): on to the next stored event.
            cursor.execute(following, [until])
            (next_sequence,) = cursor.fetchone()
            if next_sequence is None:
                return
            after = next_sequence - 1


_sequence = operator.itemgetter(SEQUENCE)
# The C scanner behind json.loads, without its wrappers.
_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _whole_json(text: Any) -> Any:
    """The JSON value that is the whole of ``text`` (a ``ValueError`` otherwise)."""
    if not isinstance(text, str):
        raise ValueError("not text")
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        raise ValueError("not JSON") from None
    if end != len(text):
        raise ValueError("more than one JSON value")
    return value


_sha256 = hashlib.sha256


def row_agrees(row: tuple[Any, ...], *, expected_sequence: int, previous: str) -> bool:
    """See ``_agrees`` (the hot loop calls it positionally)."""
    return _agrees(row, expected_sequence, previous)


def _agrees(row: tuple[Any, ...], expected_sequence: int, previous: str) -> bool:
    """True when the stored row ``row`` (a row of ``stored_rows``) follows the event hashed
    ``previous`` at ``expected_sequence``, its hash matches its canonical bytes and its columns
    say what those bytes say: the canonical text is the head and tail the database rendered
    from the columns around one JSON value equal to the column's details (the same text, or the
    same value once both are parsed). False means only that ``row_problem`` must judge the row."""
    sequence, prev_hash, digest, canonical, _, head, tail = row[:7]
    if sequence != expected_sequence or prev_hash != previous:
        return False
    if _sha256(canonical.encode("utf-8")).hexdigest() != digest:
        return False
    if head is None or tail is None or len(canonical) <= len(head) + len(tail):
        return False
    if not (canonical.startswith(head) and canonical.endswith(tail)):
        return False
    value = canonical[len(head) : -len(tail)]
    try:
        if value == row[7]:  # the same text: the same value, once it is known to be one JSON value
            _whole_json(value)
            return True
        return bool(_whole_json(value) == _whole_json(row[7]))
    except (TypeError, ValueError):
        return False


def raw_row_problem(row: tuple[Any, ...], *, expected_sequence: int, previous: str) -> str:
    """``row_problem`` for a row of ``stored_rows``: the same answer, at hashing speed.

    The common case is decided by ``row_agrees``; a row it does not vouch for is re-read through
    the model and judged by ``row_problem`` itself, so the verdict and its wording are exactly
    those of the model's comparison.
    """
    if _agrees(row, expected_sequence, previous):
        return ""
    stored = AuditEvent.objects.filter(sequence=row[0]).values_list(*COLUMNS).get()
    return row_problem(stored, expected_sequence=expected_sequence, previous=previous)


def _hmac_pads(key: bytes) -> tuple[Any, Any]:
    """The inner and outer SHA-256 states of HMAC-SHA256 keyed with ``key`` (RFC 2104), so that
    HMAC(key, m) = outer + SHA-256(inner + m): per event two C ``copy`` calls instead of
    ``hmac.HMAC.copy``'s Python wrapper. Checked once against ``hmac`` itself."""
    block = key if len(key) <= 64 else _sha256(key).digest()  # 64: SHA-256's block size
    block = block.ljust(64, b"\0")
    inner = _sha256(bytes(byte ^ 0x36 for byte in block))
    outer = _sha256(bytes(byte ^ 0x5C for byte in block))
    probe_inner, probe_outer = inner.copy(), outer.copy()
    probe_inner.update(b"probe")
    probe_outer.update(probe_inner.digest())
    if probe_outer.digest() != hmac.new(key, b"probe", _sha256).digest():  # pragma: no cover
        raise AssertionError("the HMAC pads do not give HMAC-SHA256")
    return inner, outer


def keyed_run(
    rows: list[tuple[Any, ...]],
    start: int,
    *,
    expected_sequence: int,
    previous: str,
    key: bytes,
    tree: Any = None,
) -> int:
    """How many rows of ``stored_rows`` from ``rows[start]`` on are vouched for, one after the
    other: each follows the one before (the first follows ``previous`` at ``expected_sequence``),
    agrees with its hash and its content (``row_agrees``) and carries a MAC that matches. Stops at
    the first row that does not, or has no MAC: the caller's per-row checks judge it.

    With ``tree`` (a ``tlog.verification.TreeWalk``), each row's public log leaf is checked and
    added to it in the same loop, as ``TreeWalk.add`` would (the leaf is there, its commitment
    opens to the canonical bytes with its salt); a row whose leaf is wrong also stops the run,
    for ``TreeWalk.add`` to word its problem. This is the hot loop of ``verify_audit``: one pass
    over the row, each value looked at once, the canonical text encoded once."""
    inner, outer = _hmac_pads(key)
    inner_copy, outer_copy, same, sha256, scan = inner.copy, outer.copy, hmac.compare_digest, _sha256, _scan
    if tree is not None:
        stack, snapshots, sizes = tree.stack, tree.snapshots, tree.sizes
        leaves, first_leaf, covered = tree.count, tree.start, tree.covered
    else:
        stack, snapshots, sizes, leaves, first_leaf, covered = [], {}, (), 0, 0, 0
    count = 0
    try:
        for row in rows[start:] if start else rows:
            sequence, prev_hash, digest, canonical, mac, head, tail, details = row[:8]
            if sequence != expected_sequence or prev_hash != previous or mac is None:
                break
            data = canonical.encode("utf-8")
            if sha256(data).hexdigest() != digest:
                break
            # The columns: the canonical text is the rendered head and tail around one JSON value
            # equal to the column's details (see ``_agrees``).
            if head is None or tail is None:
                break
            size, before, after = len(canonical), len(head), len(tail)
            if size <= before + after or not canonical.startswith(head) or not canonical.endswith(tail):
                break
            value = canonical[before : size - after]
            parsed, end = scan(value, 0)
            if end != len(value):
                break
            if value != details:
                if not isinstance(details, str):
                    break
                other, end = scan(details, 0)
                if end != len(details) or parsed != other:
                    break
            check = inner_copy()
            check.update(digest.encode("ascii"))
            keyed = outer_copy()
            keyed.update(check.digest())
            if not same(keyed.hexdigest(), mac):
                break
            if tree is not None and first_leaf + leaves < covered:
                index = first_leaf + leaves
                salt, commitment = row[LEAF_SALT], row[LEAF_COMMITMENT]
                if (
                    row[LEAF_INDEX] != index
                    or sequence != index + 1
                    or len(salt) != SALT_BYTES
                    or sha256(salt + data).digest() != commitment
                ):
                    break
                node = sha256(b"\x00" + commitment).digest()
                leaves += 1
                merged = leaves
                while not merged & 1:
                    node = sha256(b"\x01" + stack.pop() + node).digest()
                    merged >>= 1
                stack.append(node)
                if first_leaf + leaves in sizes:
                    snapshots[first_leaf + leaves] = stack.copy()
            previous = digest
            expected_sequence += 1
            count += 1
    except (TypeError, ValueError, AttributeError, StopIteration, UnicodeEncodeError):
        # A value of another type (a NULL leaf, a MAC or hash that is not ASCII text, details that
        # are not JSON): the row is judged per row.
        pass
    finally:
        if tree is not None:
            tree.count = leaves
    return count
