"""The sequencer: puts audit events into the public log, in batches, and signs a checkpoint
after each batch.

One batch is one transaction: it locks the log's state row, chains the events waiting for the
chainer (batched chaining, ``esante.audit.chaining``: same transaction, same batch size), takes
the next events in sequence
order (at most ``TLOG_BATCH_SIZE``), checks that they still chain from the last event sequenced
and carry valid MACs (the same checks as the heads signer: a tampered or forged event never
reaches the public log), draws each event's salt, writes the leaves, the tiles that change, the
new state and the signed checkpoint, and commits. A sequencer killed mid-batch leaves nothing of
that batch behind; the next run takes the same events again, so no event is lost or put twice
(``LogLeaf.event`` is unique, the leaf index is the primary key, and the state row is locked).

Run by ``esante sequence_log`` (once, or ``--every SECONDS``) and by a thread of ``esante serve``
(``sequence_loop``), next to the heads signer, in the one ``esante serve`` that holds the leader
lock (``esante.core.leader``); several sequencers at once are safe all the same: they queue on the
state row. After each pass, once the batches are committed, the witness is asked to cosign the
latest checkpoint (``tlog.witnessing``).
"""

import datetime
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections, connection, transaction

from esante.audit.chain import COLUMNS, mac_problem, row_problem
from esante.audit.chaining import chain_batch
from esante.audit.keys import MissingKeyError, load_or_create_signing_key, mac_key
from esante.audit.models import AuditEvent

from . import leaf, merkle, note, tiles
from .models import LogCheckpoint, LogLeaf, LogState, LogTile
from .storage import DatabaseTiles, log_state
from .witnessing import witness_latest

logger = logging.getLogger("esante.tlog")


class SequencerRefused(Exception):
    """The next events cannot go into the log: they no longer chain from the last one sequenced,
    or one lacks a valid MAC. Nothing of the batch was written."""


@dataclass(frozen=True)
class BatchResult:
    added: int
    size: int
    root: bytes
    checkpoint: LogCheckpoint | None


def _checked_rows(state: LogState, limit: int) -> list[tuple[int, str, bool]]:
    """(event id, canonical, keyed) of the next events, each checked against its predecessor.
    Raises SequencerRefused at the first that fails."""
    rows = (
        AuditEvent.objects.filter(sequence__gt=state.last_sequence)
        .order_by("sequence")
        .values_list(*COLUMNS, "id")[:limit]
    )
    previous, expected, keyed = state.last_hash, state.last_sequence + 1, state.last_keyed
    key: bytes | None = None
    checked: list[tuple[int, str, bool]] = []
    for row in rows:
        if row[15] is not None and key is None:
            try:
                key = mac_key(create=False)
            except (MissingKeyError, ValueError) as exc:
                raise SequencerRefused(f"not sequencing: {exc}: the events' MACs cannot be checked") from exc
        problem = row_problem(row, expected_sequence=expected, previous=previous) or mac_problem(
            row[2], row[15], key=key or b"", after_keyed=keyed, allow_legacy=True
        )
        if problem:
            raise SequencerRefused(f"not sequencing event #{min(row[0], expected)}: {problem}")
        keyed = keyed or row[15] is not None
        checked.append((row[16], row[3], keyed))
        previous, expected = row[2], expected + 1
    if checked:
        state.last_sequence, state.last_hash, state.last_keyed = expected - 1, previous, keyed
    return checked


def _insert_leaves(leaves: list[LogLeaf]) -> None:
    """The batch's leaves as plain rows: ``COPY`` on PostgreSQL, ``bulk_create`` elsewhere."""
    if connection.vendor != "postgresql":
        LogLeaf.objects.bulk_create(leaves)
        return
    quote = connection.ops.quote_name
    columns = ", ".join(quote(column) for column in ("index", "event_id", "salt", "commitment"))
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY {quote(LogLeaf._meta.db_table)} ({columns}) FROM STDIN") as copy,
    ):
        for item in leaves:
            copy.write_row((item.index, item.event_id, item.salt, item.commitment))


def sign_checkpoint(size: int, root: bytes) -> str:
    return note.sign_checkpoint(settings.TLOG_ORIGIN, size, root, load_or_create_signing_key())


def sequence_batch(
    *,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    chained: Callable[[int, int], None] | None = None,
) -> BatchResult:
    """Chains the events waiting for the chainer (batched chaining, ``audit.chaining``), then
    sequences the next events (at most ``limit``, default ``TLOG_BATCH_SIZE``), all in one
    transaction, and signs a checkpoint of the new tree. Raises SequencerRefused (nothing
    written) when an event fails its chain or MAC check, or when a waiting event fails its intake
    MAC and nothing else is left to sequence. ``chained(first, last)`` is called once events are
    chained, ``progress(first, last)`` once the batch's leaves are written, before its tiles and
    its commit."""
    limit = limit or settings.TLOG_BATCH_SIZE
    with transaction.atomic():
        state = log_state(for_update=True)
        caught_up = state.last_sequence  # the log's last event, before this pass chains more
        chaining = chain_batch(limit=limit, progress=chained)
        if chaining.events and chaining.events[0][1] == caught_up + 1:
            # The log had every chained event and the chainer has just chained the next ones, in
            # this transaction, from rows whose intake MAC it checked: they are the next events,
            # no need to read them back and check again what was computed here.
            rows = [(event_id, canonical, True) for event_id, _, canonical, _ in chaining.events]
            state.last_sequence, state.last_hash = chaining.events[-1][1], chaining.events[-1][3]
            state.last_keyed = True
        else:
            rows = _checked_rows(state, limit)
        if not rows:
            if chaining.refused:  # nothing was chained: nothing is rolled back
                raise SequencerRefused(chaining.refused)
            return BatchResult(0, state.size, bytes(state.root), None)
        start = state.size
        leaves = []
        for offset, (event_id, canonical, _) in enumerate(rows):
            salt = secrets.token_bytes(leaf.SALT_BYTES)
            leaves.append(
                LogLeaf(
                    index=start + offset,
                    event_id=event_id,
                    salt=salt,
                    commitment=leaf.commitment(salt, canonical),
                )
            )
        _insert_leaves(leaves)
        if progress is not None:
            progress(start, start + len(leaves) - 1)
        stored = DatabaseTiles()
        changed = tiles.append_hashes(
            start, (merkle.leaf_hash(bytes(item.commitment)) for item in leaves), stored.tile
        )
        for (level, index), data in changed.items():
            updated = LogTile.objects.filter(level=level, index=index).update(hashes=data)
            if not updated:
                LogTile.objects.create(level=level, index=index, hashes=data)
        size = start + len(leaves)
        root = tiles.tree_root(tiles.MemoryTiles(changed, under=stored), size)
        state.size, state.root = size, root
        state.save()
        checkpoint = LogCheckpoint.objects.create(
            size=size,
            root=root,
            note=sign_checkpoint(size, root),
            created_at=datetime.datetime.now(datetime.UTC),
        )
    return BatchResult(len(leaves), size, root, checkpoint)


def sequence_pending(*, limit: int | None = None) -> int:
    """Sequences batch after batch until no event waits; the number of events added."""
    total = 0
    while True:
        result = sequence_batch(limit=limit)
        if not result.added:
            return total
        total += result.added


def sequence_loop(stop: threading.Event, *, interval: float) -> None:
    """Sequences waiting events every ``interval`` seconds until ``stop`` is set (a thread of
    ``esante serve``), then asks the witness (when one is configured) to cosign the latest
    checkpoint if it has not answered for it yet. A refusal or failure is logged each time and
    tried again next round."""
    try:
        while not stop.wait(interval):
            try:
                sequence_pending()
            except SequencerRefused as exc:
                logger.error("public log sequencing REFUSED: %s", exc)
            except Exception:
                logger.exception("public log sequencing failed")
            try:
                witness_latest()
            except Exception:
                logger.exception("public log: asking the witness failed")
            finally:
                close_old_connections()
    finally:
        connection.close()
