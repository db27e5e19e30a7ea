"""Writing the audit trail.

Two ways to chain (``AUDIT_CHAINING``): "inline" (below) locks the chain head row and writes the
event chained; "batched" inserts it unchained, without a lock, for the chainer
(``esante.audit.chaining``) to chain within the second. Either way the event is in the caller's
transaction: no action commits without its event.

``audit_record`` is the one way to append an event. Call it inside the action's own transaction,
as its last statement, so the chain head is locked only for the end of that transaction. A
refused or failed action records its event with ``audit_record`` *outside* the failed
transaction (after it rolled back), so the refusal stays while the action does not.
"""

import contextlib
import contextvars
import datetime
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Field
from django.utils import timezone

from .catalogue import AuditAction, AuditOutcome
from .keys import event_mac, intake_mac, mac_key
from .models import AuditChainHead, AuditEvent

GENESIS_HASH = "0" * 64

# What the channel of the current request says about itself (the API: the software client),
# added under ``via`` to the details of every event written while it is set.
_VIA: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("audit_via", default=None)


@contextlib.contextmanager
def audit_via(details: dict[str, Any]) -> Iterator[None]:
    """Every event written inside the block carries ``details`` under ``via`` (e.g. the API's
    software client), whichever service writes it."""
    token = _VIA.set({**(_VIA.get() or {}), **details})
    try:
        yield
    finally:
        _VIA.reset(token)


def canonical_bytes(payload: dict[str, Any]) -> str:
    """The canonical text of an event: JSON, sorted keys, no whitespace, UTF-8."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _hash(canonical: str) -> str:
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _payload(
    *,
    sequence: int,
    prev_hash: str,
    created_at: datetime.datetime,
    actor_id: int | None,
    actor_label: str,
    action: AuditAction | str,
    outcome: AuditOutcome | str,
    patient_id: int | None,
    object_type: str,
    object_id: str,
    motif: str,
    client_address: str | None,
    details: dict[str, Any],
) -> dict[str, Any]:
    """The hashed content of an event: what its canonical bytes hold. ``action`` and ``outcome``
    are catalogue members, or their stored values (the chainer reads them from the row)."""
    return {
        "seq": sequence,
        "time": created_at.astimezone(datetime.UTC).isoformat(),
        "actor": actor_id,
        "actor_label": actor_label,
        "action": action.value if isinstance(action, AuditAction) else action,
        "outcome": outcome.value if isinstance(outcome, AuditOutcome) else outcome,
        "patient": patient_id,
        "object_type": object_type,
        "object_id": object_id,
        "motif": motif,
        "client_address": client_address,
        "details": details,
        "prev": prev_hash,
    }


def content_text(payload: dict[str, Any]) -> str:
    """What an unchained event's intake MAC covers: its canonical content without the chain's
    two fields (``seq``, ``prev``), which the chainer adds."""
    return canonical_bytes({name: value for name, value in payload.items() if name not in ("seq", "prev")})


def batched() -> bool:
    return bool(settings.AUDIT_CHAINING == "batched")


def _reserving() -> contextlib.AbstractContextManager[Any]:
    """Where ids are reserved: on SQLite, a transaction (its write lock, taken at BEGIN IMMEDIATE,
    keeps the next id ours); on PostgreSQL, nothing (a sequence hands out ids without a lock)."""
    return transaction.atomic() if connection.vendor == "sqlite" else contextlib.nullcontext()


def _reserve_ids(count: int) -> list[int]:
    """``count`` new ids for audit events, before their insert: the intake MAC covers the id."""
    table = AuditEvent._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, count]
            )
            return [row[0] for row in cursor.fetchall()]
        # SQLite (AUTOINCREMENT): after the largest id ever handed out, under the write lock.
        cursor.execute(
            f"SELECT MAX(n) FROM (SELECT MAX(id) AS n FROM {table} "  # noqa: S608 (constants)
            "UNION ALL SELECT seq FROM sqlite_sequence WHERE name = %s)",
            [table],
        )
        last = cursor.fetchone()[0] or 0
    return list(range(last + 1, last + 1 + count))


# PostgreSQL, batched chaining: each thread draws the ids of its events from the id sequence in
# blocks (one ``nextval`` round trip for up to ``ID_BLOCK_MAX`` events instead of one per event),
# a block kept at most ``ID_BLOCK_SECONDS``; the block doubles while the thread uses one up in
# that time and falls back to one id after a pause (a quiet process wastes few ids). Why it is
# safe: nothing takes id order for commit order or chain order. Even with one ``nextval`` per
# event, a transaction holding a smaller id may commit after one holding a larger id has been
# chained; the chainer takes the *waiting* events in id order only to have an order, and
# ``verify_audit`` and the public log walk the chain by sequence. What ids do order is the
# patient's journal (``espace.selectors.journal_events``, newest first by id): a block kept at
# most a second keeps that order true to within a second (and the chain's order among events
# waiting together). A thread's ids increase: its events are chained in the order it wrote them
# (``audit_record_many`` drops the block). Ids skipped (a block not used up) are
# gaps in the ids, never in the sequences.
ID_BLOCK_MAX = 64
ID_BLOCK_SECONDS = 1.0


class _IdBlock(threading.local):
    def __init__(self) -> None:
        self.owner: tuple[Any, ...] = ()
        self.ids: list[int] = []  # the ids left, last one first
        self.size = 1
        self.drawn = 0.0  # time.monotonic() of the draw


_id_block = _IdBlock()


def _drop_id_block() -> None:
    """Forgets this thread's block (an id of it was already taken by another insert)."""
    _id_block.ids, _id_block.size = [], 1


def _next_id() -> int:
    """PostgreSQL: the next id of this thread's block, drawing a new block when it is used up,
    too old, or drawn in another process (a fork) or from another database."""
    block, now = _id_block, time.monotonic()
    owner = (os.getpid(), connection.alias, connection.settings_dict.get("NAME"))
    if block.owner != owner or not block.ids or now - block.drawn > ID_BLOCK_SECONDS:
        if block.owner == owner and not block.ids and now - block.drawn <= ID_BLOCK_SECONDS:
            block.size = min(ID_BLOCK_MAX, block.size * 2)  # used up in time: a larger one
        else:
            block.size = 1  # a pause, or a new process or database
        block.ids = _reserve_ids(block.size)[::-1]
        block.owner, block.drawn = owner, now
    return block.ids.pop()


# Columns of an unchained event, in the order of ``_insert_one_unchained``'s statement; those
# whose value the database driver takes only through their field (``get_db_prep_save``).
_UNCHAINED = (
    "id",
    "created_at",
    "actor",
    "actor_label",
    "action",
    "outcome",
    "patient",
    "object_type",
    "object_id",
    "motif",
    "client_address",
    "details",
    "mac",
)
_ADAPTED = ("created_at", "client_address", "details")
_statements: dict[str, str] = {}


def _field(name: str) -> "Field[Any, Any]":
    field = AuditEvent._meta.get_field(name)
    assert isinstance(field, Field)  # noqa: S101 (a concrete column of the model)
    return field


def _unchained_statement(vendor: str) -> str:
    if vendor not in _statements:
        fields = [_field(name) for name in _UNCHAINED]
        columns = ", ".join(connection.ops.quote_name(str(field.column)) for field in fields)
        table = connection.ops.quote_name(AuditEvent._meta.db_table)
        statement = f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"  # noqa: S608 (constants)
        if vendor == "postgresql":
            statement += " ON CONFLICT (id) DO NOTHING RETURNING id"
        _statements[vendor] = statement
    return _statements[vendor]


def _insert_one_unchained(event: AuditEvent) -> AuditEvent:
    """Batched chaining: inserts ``event`` unchained, with its id and the intake MAC over it and
    its content, in one statement (no model save, no savepoint, on PostgreSQL no id query but
    once a block), and returns it saved. Should another row hold the id drawn already (the id
    sequence set back under a running process), ``ON CONFLICT DO NOTHING`` leaves the
    transaction usable and the event is inserted again under a fresh id."""
    content = content_text(
        _payload(
            sequence=0,
            prev_hash="",
            created_at=event.created_at,
            actor_id=event.actor_id,
            actor_label=event.actor_label,
            action=event.action,
            outcome=event.outcome,
            patient_id=event.patient_id,
            object_type=event.object_type,
            object_id=event.object_id,
            motif=event.motif,
            client_address=event.client_address,
            details=event.details,
        )
    )
    key = mac_key()
    postgresql = connection.vendor == "postgresql"
    statement = _unchained_statement(connection.vendor)
    created_at, client_address, details = (
        _field(name).get_db_prep_save(getattr(event, name), connection) for name in _ADAPTED
    )
    with _reserving():
        for _attempt in range(3):
            event.id = _next_id() if postgresql else _reserve_ids(1)[0]
            event.mac = intake_mac(event.id, content, key)
            params = (
                event.id,
                created_at,
                event.actor_id,
                event.actor_label,
                event.action,
                event.outcome,
                event.patient_id,
                event.object_type,
                event.object_id,
                event.motif,
                client_address,
                details,
                event.mac,
            )
            with connection.cursor() as cursor:
                cursor.execute(statement, params)
                if not postgresql or cursor.fetchone() is not None:
                    break
            _drop_id_block()
        else:
            raise RuntimeError("audit event: no free id after three draws from the id sequence")
    event._state.adding, event._state.db = False, connection.alias
    return event


def audit_record(
    *,
    action: AuditAction,
    outcome: AuditOutcome = AuditOutcome.SUCCESS,
    actor: Any = None,
    actor_label: str = "",
    patient: Any = None,
    object_type: str = "",
    object_id: str | int = "",
    motif: str = "",
    client_address: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime.datetime | None = None,
) -> AuditEvent:
    """Appends one event to the chain and returns it.

    ``action`` and ``outcome`` are members of the closed catalogue (``esante.audit.catalogue``);
    anything else raises ``TypeError``. Inline chaining locks the chain head row, so concurrent
    writers queue and the chain stays linear; batched chaining inserts the event unchained (its
    intake MAC in ``mac``), without a lock, and returns it without a sequence. Joins the caller's
    transaction when there is one; otherwise runs in a transaction of its own. Stores a keyed MAC
    of the event's hash with it (``audit.keys``; one HMAC, the key read once a process).
    """
    if not isinstance(action, AuditAction):
        raise TypeError(f"audit action {action!r} is not an AuditAction member")
    if not isinstance(outcome, AuditOutcome):
        raise TypeError(f"audit outcome {outcome!r} is not an AuditOutcome member")
    details = details or {}
    via = _VIA.get()
    if via and "via" not in details:
        details = {**details, "via": via}
    created_at = at or timezone.now()
    if actor is not None and not actor_label:
        actor_label = getattr(actor, "get_username", lambda: str(actor))()
    if batched():
        # No lock: the chainer gives it its place in the chain (``audit.chaining``).
        return _insert_one_unchained(
            AuditEvent(
                created_at=created_at,
                actor=actor,
                actor_label=actor_label,
                action=action.value,
                outcome=outcome.value,
                patient=patient,
                object_type=object_type,
                object_id=str(object_id),
                motif=motif,
                client_address=client_address,
                details=details,
            )
        )
    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().get(pk=1)
        sequence = head.sequence + 1
        payload = _payload(
            sequence=sequence,
            prev_hash=head.hash,
            created_at=created_at,
            actor_id=actor.pk if actor is not None else None,
            actor_label=actor_label,
            action=action,
            outcome=outcome,
            patient_id=patient.pk if patient is not None else None,
            object_type=object_type,
            object_id=str(object_id),
            motif=motif,
            client_address=client_address,
            details=details,
        )
        canonical = canonical_bytes(payload)
        digest = _hash(canonical)
        event = AuditEvent.objects.create(
            sequence=sequence,
            created_at=created_at,
            actor=actor,
            actor_label=actor_label,
            action=action.value,
            outcome=outcome.value,
            patient=patient,
            object_type=object_type,
            object_id=str(object_id),
            motif=motif,
            client_address=client_address,
            details=details,
            canonical=canonical,
            prev_hash=head.hash,
            hash=digest,
            mac=event_mac(digest),
        )
        AuditChainHead.objects.filter(pk=1).update(sequence=sequence, hash=digest)
    return event


# Columns ``audit_record_many`` writes, in this order.
_COLUMNS = (
    "sequence",
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
    "canonical",
    "prev_hash",
    "hash",
    "mac",
)


def audit_record_many(
    *,
    action: AuditAction,
    entries: Sequence[tuple[int | None, dict[str, Any]]],
    outcome: AuditOutcome = AuditOutcome.SUCCESS,
    actor: Any = None,
    actor_label: str = "",
) -> int:
    """Appends one event per entry ``(patient id, details)``, all of the same action, and
    returns how many were written.

    The same chain as ``audit_record`` (the same canonical content, each event linked to the one
    before, each with its MAC), but the head is locked once and the events are inserted as plain
    rows (``COPY`` on PostgreSQL, one ``executemany`` on SQLite): a bulk operation (the patient
    import) traces every row it changed without a round trip and a model instance per event.
    Same transaction rules as ``audit_record``.
    """
    if not isinstance(action, AuditAction):
        raise TypeError(f"audit action {action!r} is not an AuditAction member")
    if not isinstance(outcome, AuditOutcome):
        raise TypeError(f"audit outcome {outcome!r} is not an AuditOutcome member")
    if not entries:
        return 0
    via = _VIA.get()
    created_at = timezone.now()
    if actor is not None and not actor_label:
        actor_label = getattr(actor, "get_username", lambda: str(actor))()
    actor_id = actor.pk if actor is not None else None
    stored_at = connection.ops.adapt_datetimefield_value(created_at)
    if batched():
        return _insert_unchained(action, outcome, entries, created_at, actor_id, actor_label, via)
    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().get(pk=1)
        sequence, prev_hash = head.sequence, head.hash
        rows = []
        for patient_id, entry_details in entries:
            details = {**entry_details, "via": via} if via and "via" not in entry_details else entry_details
            sequence += 1
            canonical = canonical_bytes(
                _payload(
                    sequence=sequence,
                    prev_hash=prev_hash,
                    created_at=created_at,
                    actor_id=actor_id,
                    actor_label=actor_label,
                    action=action,
                    outcome=outcome,
                    patient_id=patient_id,
                    object_type="",
                    object_id="",
                    motif="",
                    client_address=None,
                    details=details,
                )
            )
            digest = _hash(canonical)
            rows.append(
                (
                    sequence,
                    stored_at,
                    actor_id,
                    actor_label,
                    action.value,
                    outcome.value,
                    patient_id,
                    "",
                    "",
                    "",
                    None,
                    connection.ops.adapt_json_value(details, None),
                    canonical,
                    prev_hash,
                    digest,
                    event_mac(digest),
                )
            )
            prev_hash = digest
        _insert_rows(_COLUMNS, rows)
        AuditChainHead.objects.filter(pk=1).update(sequence=sequence, hash=prev_hash)
    return len(rows)


def _insert_rows(columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
    """Inserts plain rows: ``COPY`` on PostgreSQL, one ``executemany`` on SQLite."""
    table, listed = AuditEvent._meta.db_table, ", ".join(columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.copy(f"COPY {table} ({listed}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            placeholders = ", ".join(["%s"] * len(columns))
            cursor.executemany(f"INSERT INTO {table} ({listed}) VALUES ({placeholders})", rows)  # noqa: S608 - fixed names


def _insert_unchained(
    action: AuditAction,
    outcome: AuditOutcome,
    entries: Sequence[tuple[int | None, dict[str, Any]]],
    created_at: datetime.datetime,
    actor_id: int | None,
    actor_label: str,
    via: dict[str, Any] | None,
) -> int:
    """``audit_record_many`` in batched chaining: the events inserted unchained, each with its
    intake MAC, without a lock."""
    stored_at = connection.ops.adapt_datetimefield_value(created_at)
    rows = []
    with _reserving():
        _drop_id_block()  # the next audit_record's id comes after these (a thread's ids increase)
        ids = _reserve_ids(len(entries))
        for event_id, (patient_id, entry_details) in zip(ids, entries, strict=True):
            details = {**entry_details, "via": via} if via and "via" not in entry_details else entry_details
            content = content_text(
                _payload(
                    sequence=0,
                    prev_hash="",
                    created_at=created_at,
                    actor_id=actor_id,
                    actor_label=actor_label,
                    action=action,
                    outcome=outcome,
                    patient_id=patient_id,
                    object_type="",
                    object_id="",
                    motif="",
                    client_address=None,
                    details=details,
                )
            )
            rows.append(
                (
                    event_id,
                    stored_at,
                    actor_id,
                    actor_label,
                    action.value,
                    outcome.value,
                    patient_id,
                    "",
                    "",
                    "",
                    None,
                    connection.ops.adapt_json_value(details, None),
                    intake_mac(event_id, content),
                )
            )
        with transaction.atomic():
            _insert_rows(("id", *_COLUMNS[1:12], "mac"), rows)
    return len(rows)
