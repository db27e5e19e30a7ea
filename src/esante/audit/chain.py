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
from collections.abc import Iterator
from typing import Any

from django.db import connection

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
    rows = (
        AuditEvent.objects.filter(sequence__gt=after, sequence__lte=upto)
        .order_by("sequence")
        .values_list(*COLUMNS)
        .iterator(chunk_size=2_000)
    )
    for row in rows:
        problem = row_problem(row, expected_sequence=expected, previous=previous) or mac_problem(
            row[2], row[15], key=key, after_keyed=keyed, allow_legacy=allow_legacy
        )
        if problem:
            return f"event #{min(row[0], expected)}: {problem}"
        previous, expected = row[2], expected + 1
        keyed = keyed or row[15] is not None
    if expected != upto + 1:
        return f"event #{expected} is missing (the chain head says #{upto})"
    if previous != upto_hash:
        return f"event #{upto} differs from the chain head"
    return ""


def stored_rows(after: int, upto: int, batch: int = 10_000) -> Iterator[list[tuple[Any, ...]]]:
    """The stored rows of the events after #``after`` up to #``upto``, in order, as the database
    driver returns them (values of ``COLUMNS``, no model conversion), ``batch`` sequence numbers
    at a time.

    Read by ranges of the sequence index, so memory stays constant whatever the trail's length.
    The date comes as the stored text on SQLite (no date parsing); ``details`` as its JSON text.
    """
    quote = connection.ops.quote_name
    columns = [quote(column) for column in COLUMNS]
    if connection.vendor == "sqlite":
        columns[4] = f"{columns[4]} || ''"  # text, skipping the driver's date converter
    elif connection.vendor == "postgresql":  # UTC text, whatever the session's DateStyle
        columns[4] = f"to_char({columns[4]} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
    sql = (
        f"SELECT {', '.join(columns)} FROM {quote(AuditEvent._meta.db_table)} "  # noqa: S608 (constants)
        f"WHERE {quote('sequence')} > %s AND {quote('sequence')} <= %s ORDER BY {quote('sequence')}"
    )
    following = (
        f"SELECT MIN({quote('sequence')}) FROM {quote(AuditEvent._meta.db_table)} "  # noqa: S608 (constants)
        f"WHERE {quote('sequence')} > %s"
    )
    with connection.cursor() as cursor:
        # Ranges of the sequence, not LIMIT: the plan stays a short index range whatever the
        # table's statistics say (a fresh table's would sort the whole rest for each batch).
        while after < upto:
            until = min(after + batch, upto)
            cursor.execute(sql, [after, until])
            rows = cursor.fetchall()
            if rows:
                yield rows
                after = until
                continue
            # A gap (events removed, or a head row moved far ahead): on to the next stored event.
            cursor.execute(following, [until])
            (next_sequence,) = cursor.fetchone()
            if next_sequence is None:
                return
            after = next_sequence - 1


_quote = json.encoder.encode_basestring  # as ``canonical_bytes`` writes a string (ensure_ascii=False)
# The C scanner behind json.loads, without its wrappers.
_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _whole_json(text: Any) -> Any:
    """The JSON value that is the whole of ``text`` (a ``ValueError`` otherwise); a value the
    driver already decoded is returned as it is."""
    if not isinstance(text, str):
        return text
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        raise ValueError("not JSON") from None
    if end != len(text):
        raise ValueError("more than one JSON value")
    return value


_sha256 = hashlib.sha256
_fromisoformat = datetime.datetime.fromisoformat


def _json_scalar(value: Any) -> str:
    """An int, None or a string as ``canonical_bytes`` writes it."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return _quote(value)
    return str(int(value))


def _stored_time(value: Any) -> str:
    """The stored date as the canonical content writes it (ISO 8601, UTC), read as the model
    reads it: the text ``stored_rows`` selects is a naive UTC date."""
    if isinstance(value, str):
        return _fromisoformat(value).isoformat() + "+00:00"
    return value.astimezone(datetime.UTC).isoformat()


def row_agrees(row: tuple[Any, ...], *, expected_sequence: int, previous: str) -> bool:
    """See ``_agrees`` (the hot loop calls it positionally)."""
    return _agrees(row, expected_sequence, previous)


def _agrees(row: tuple[Any, ...], expected_sequence: int, previous: str) -> bool:
    """True when the stored row ``row`` (a row of ``stored_rows``) follows the event hashed
    ``previous`` at ``expected_sequence``, its hash matches its canonical bytes and its columns
    say what those bytes say: the canonical text is rebuilt around its ``details`` from the
    columns and compared byte for byte, so only the small ``details`` are parsed. False means
    only that ``row_problem`` must judge the row."""
    sequence, prev_hash, digest, canonical = row[:4]
    if sequence != expected_sequence or prev_hash != previous:
        return False
    if _sha256(canonical.encode("utf-8")).hexdigest() != digest:
        return False
    try:
        head = (
            f'{{"action":{_quote(row[7])},"actor":{_json_scalar(row[5])},'
            f'"actor_label":{_quote(row[6])},"client_address":{_json_scalar(row[13])},"details":'
        )
        tail = (
            f',"motif":{_quote(row[12])},"object_id":{_quote(row[11])},"object_type":{_quote(row[10])},'
            f'"outcome":{_quote(row[8])},"patient":{_json_scalar(row[9])},"prev":{_quote(prev_hash)},'
            f'"seq":{sequence},"time":{_quote(_stored_time(row[4]))}}}'
        )
        if len(canonical) <= len(head) + len(tail) or not (
            canonical.startswith(head) and canonical.endswith(tail)
        ):
            return False
        # Between the two, one JSON value equal to the column's details.
        return bool(_whole_json(canonical[len(head) : -len(tail)]) == _whole_json(row[14]))
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


def keyed_run(
    rows: list[tuple[Any, ...]], start: int, *, expected_sequence: int, previous: str, key: bytes
) -> int:
    """How many rows of ``stored_rows`` from ``rows[start]`` on are vouched for, one after the
    other: each follows the one before (the first follows ``previous`` at ``expected_sequence``),
    agrees with its hash and its content (``row_agrees``) and carries a MAC that matches. Stops at
    the first row that does not, or has no MAC: the caller's per-row checks judge it."""
    digest_of, same, agrees = hmac.digest, hmac.compare_digest, _agrees
    count = 0
    for row in rows[start:] if start else rows:
        mac = row[15]
        if mac is None or not agrees(row, expected_sequence, previous):
            break
        previous = row[2]
        if not same(
            digest_of(key, previous.encode("ascii"), "sha256").hex().encode("ascii"), mac.encode("utf-8")
        ):
            break
        expected_sequence += 1
        count += 1
    return count
