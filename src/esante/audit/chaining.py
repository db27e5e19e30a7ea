"""Batched chaining: the audit chain built by one chainer, many events per head update
(``AUDIT_CHAINING = "batched"``), instead of one locked head row per audited action.

Why: inline chaining (``audit_record`` locks ``AuditChainHead`` inside the action's transaction)
serialises every audited action on that row until its commit, so concurrent writers queue behind
one another's commits (about 500 actions/s on PostgreSQL whatever the number of writers). Batched,
``audit_record`` takes no lock: it inserts the event *unchained* (``sequence``, ``prev_hash``,
``hash`` and ``canonical`` NULL) with an intake MAC over its row id (drawn from the id sequence
first, by blocks on PostgreSQL: ``services._next_id``; a copy of the row under another id is
refused) and its content (``keys.intake_mac``) in ``mac``, in one INSERT in the caller's
transaction (no action commits without its event); concurrent writers
commit independently, and PostgreSQL's group commit shares the WAL flushes between them. The
chainer then, like a Trillian / Tessera sequencer integrating many entries per tree update:

- in one transaction, locks the head row, takes the unchained events in id order (at most a
  batch), checks each one's intake MAC (a row forged or changed after its insert is refused, and
  the chainer stops there: the events before it are chained, it and those after it wait, and the
  refusal is reported each pass until someone looks), gives them the next sequences from the
  head, computes their canonical bytes in exactly inline mode's format, their hash and MAC,
  updates the rows (on PostgreSQL in one statement), and moves the head once. A chained row is
  byte for byte what an inline write would have stored, so ``verify_audit``, the heads signer
  and the public log read it unchanged;
- the triggers (``audit.triggers``) allow that one UPDATE (sequence NULL to set, content columns
  unchanged) and nothing else;
- a chainer killed mid-batch leaves nothing of it (one transaction): the next pass takes the same
  events again, so none is lost or chained twice.

It runs in the public log's sequencer (``tlog.sequencer.sequence_batch``: the same transaction as
the batch that puts the events into the log and signs a checkpoint), so in ``esante serve`` in the
leader, every ``AUDIT_CHAIN_INTERVAL`` (0.2 s), and in ``esante sequence_log``. Inline and batched
writes may coexist (a setting changed on a running platform): both move the head under its lock.

"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction

from .keys import MissingKeyError, event_mac, intake_mac_matches, mac_key
from .models import AuditChainHead, AuditEvent
from .services import _hash, _payload, canonical_bytes, content_text
from .triggers import CONTENT_COLUMNS

# The content columns the chainer reads (those the triggers keep unchanged), then the intake MAC.
_READ = (*CONTENT_COLUMNS, "mac")


class ChainRefused(Exception):
    """A waiting event cannot be chained (its intake MAC fails, or no MAC key)."""


@dataclass(frozen=True)
class ChainResult:
    chained: int
    last_sequence: int
    refused: str = ""  # why the next waiting event was not chained ("" when none was refused)
    # What was chained, in sequence order: (event id, sequence, canonical, hash). The public
    # log's sequencer, in the same transaction, takes them from here instead of reading back
    # and checking again the rows it has just computed.
    events: tuple[tuple[int, int, str, str], ...] = ()


def _payload_of(row: tuple[Any, ...], *, sequence: int, prev_hash: str) -> dict[str, Any]:
    return _payload(
        sequence=sequence,
        prev_hash=prev_hash,
        created_at=row[1],
        actor_id=row[2],
        actor_label=row[3],
        action=row[4],
        outcome=row[5],
        patient_id=row[6],
        object_type=row[7],
        object_id=row[8],
        motif=row[9],
        client_address=row[10],
        details=row[11],
    )


def _intake_problem(row: tuple[Any, ...], key: bytes) -> str:
    content = content_text(_payload_of(row, sequence=0, prev_hash=""))
    if row[12] is None or not intake_mac_matches(row[0], content, row[12], key):
        return "its intake MAC does not match: it was forged or changed after it was written"
    return ""


def pending_count() -> int:
    return AuditEvent.objects.filter(sequence=None).count()


def chain_batch(*, limit: int, progress: Callable[[int, int], None] | None = None) -> ChainResult:
    """Chains at most ``limit`` waiting events, in id order, in one transaction (the caller's when
    there is one). ``progress(first, last)`` (sequences) is called once the rows are updated,
    before the head and the commit. A refused event is not raised but returned in ``refused``:
    the events before it are chained all the same."""
    if not AuditEvent.objects.filter(sequence=None).exists():  # the common case: no lock taken
        return ChainResult(0, 0)
    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().get(pk=1)
        rows = list(AuditEvent.objects.filter(sequence=None).order_by("id").values_list(*_READ)[:limit])
        if not rows:
            return ChainResult(0, head.sequence)
        try:
            key = mac_key(create=False)
        except (MissingKeyError, ValueError) as exc:
            return ChainResult(0, head.sequence, f"not chaining: {exc}: the intake MACs cannot be checked")
        sequence, previous = head.sequence, head.hash
        updates: list[tuple[Any, ...]] = []
        refused = ""
        for row in rows:
            problem = _intake_problem(row, key)
            if problem:
                refused = f"not chaining the event of id {row[0]}: {problem}"
                break
            sequence += 1
            canonical = canonical_bytes(_payload_of(row, sequence=sequence, prev_hash=previous))
            digest = _hash(canonical)
            updates.append((sequence, previous, digest, canonical, event_mac(digest, key), row[0]))
            previous = digest
        if updates:
            _write_chain(updates)
            if progress is not None:
                progress(updates[0][0], sequence)
            AuditChainHead.objects.filter(pk=1).update(sequence=sequence, hash=previous)
    events = tuple((update[5], update[0], update[3], update[2]) for update in updates)
    return ChainResult(len(updates), sequence, refused, events)


_UPDATED = ("sequence", "prev_hash", "hash", "canonical", "mac", "id")


def _write_chain(updates: list[tuple[Any, ...]]) -> None:
    """Gives the waiting rows their chain columns: ``updates`` holds (sequence, prev_hash, hash,
    canonical, mac, id) per row. On PostgreSQL one statement for the whole batch (arrays
    unnested), elsewhere one per row; either way each row must still be unchained (the
    triggers allow nothing else), and a row not updated fails the batch (rolled back)."""
    quote, table = connection.ops.quote_name, AuditEvent._meta.db_table
    sets = ", ".join(
        f"{quote(column)} = %s" for column in ("sequence", "prev_hash", "hash", "canonical", "mac")
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One text parameter (a JSON array of rows): the driver quotes it in one pass.
            rows = json.dumps(
                [dict(zip(_UPDATED, update, strict=True)) for update in updates], ensure_ascii=False
            )
            cursor.execute(
                f"UPDATE {quote(table)} AS e SET sequence = v.sequence, prev_hash = v.prev_hash, "  # noqa: S608 (constants)
                "hash = v.hash, canonical = v.canonical, mac = v.mac FROM json_to_recordset(%s::json) "
                "AS v(sequence bigint, prev_hash varchar, hash varchar, canonical text, mac varchar, "
                "id bigint) "
                "WHERE e.id = v.id AND e.sequence IS NULL",
                [rows],
            )
            updated = cursor.rowcount
        else:
            cursor.executemany(
                f"UPDATE {quote(table)} SET {sets} WHERE {quote('id')} = %s AND {quote('sequence')} IS NULL",  # noqa: S608 (constants)
                updates,
            )
            updated = cursor.rowcount
    if updated != len(updates):
        raise RuntimeError(
            f"chaining: {updated} of {len(updates)} waiting events updated; the batch is rolled back"
        )


def chain_pending(*, limit: int = 5_000) -> int:
    """Chains batch after batch until no event waits; the number chained. Raises ChainRefused
    when a waiting event is refused (those before it are chained)."""
    total = 0
    while True:
        result = chain_batch(limit=limit)
        total += result.chained
        if result.refused:
            raise ChainRefused(result.refused)
        if result.chained < limit:
            return total


def pending_problem(key: bytes) -> tuple[int, str]:
    """(how many events wait for the chainer, why the first one fails its intake MAC: "" when
    all pass). For ``verify_audit``: waiting events are pending, not tampered with, as long as
    their intake MAC holds."""
    count = 0
    waiting = AuditEvent.objects.filter(sequence=None).order_by("id").values_list(*_READ)
    for row in waiting.iterator(chunk_size=2_000):
        count += 1
        problem = _intake_problem(row, key)
        if problem:
            return count, f"the waiting event of id {row[0]}: {problem}"
    return count, ""


def check_pending(result: Any) -> None:
    """``verify_audit``'s step for the waiting events, after the chain walk: counts them in
    ``result.pending``, or sets ``result.problem`` (one fails its intake MAC) or
    ``result.missing_key``."""
    if not AuditEvent.objects.filter(sequence=None).exists():
        return
    try:
        key = mac_key(create=False)
    except (MissingKeyError, ValueError) as exc:
        result.missing_key = f"{exc}: the intake MACs of the events waiting for the chainer cannot be checked"
        return
    result.pending, result.problem = pending_problem(key)
