"""Asking the witness (``ESANTE_TLOG_WITNESS_URL``, C2SP tlog-witness) to cosign the latest
checkpoint, after the sequencer has committed it: never while the log's state row is locked.

The request carries the size of the last checkpoint the witness cosigned (the largest stored
with a cosignature, 0 at first) and a consistency proof from it, computed from the tiles. When
the witness answers 409 with the size it holds (it cosigned a checkpoint whose answer was lost),
the request is made once more from that size. A cosignature is kept only once it verifies with
``ESANTE_TLOG_WITNESS_KEY``; it is then published after the log's own signature at
``/journal/checkpoint``.

- The witness unreachable (network, 5xx): the checkpoint stays published with the log's
  signature alone; a warning says so and the next pass of the sequencer asks again.
- The witness refusing (4xx: a split view, a rollback, a bad signature ...): an error in the log,
  an audit event ``tlog.witness_refused`` with its reason, and the refusal kept with the
  checkpoint, which is not offered again (the next checkpoint is).
"""

import base64
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Max
from prometheus_client import Counter

from esante.audit.catalogue import AuditAction
from esante.audit.models import AuditEvent
from esante.audit.services import audit_record

from . import note
from .models import LogCheckpoint
from .storage import DatabaseTiles
from .tiles import consistency_proof

logger = logging.getLogger("esante.tlog")

TIMEOUT_SECONDS = 5.0

WITNESS_REQUESTS = Counter(
    "esante_tlog_witness_requests",
    "Requests for the witness's cosignature of a checkpoint, by outcome (cosigned, refused, unreachable).",
    ["outcome"],
)


@dataclass(frozen=True)
class WitnessAnswer:
    status: int  # 0 when the witness could not be reached
    content_type: str
    body: str


class _Unreachable(Exception):
    pass


def _post(url: str, body: bytes) -> WitnessAnswer:
    if not url.startswith(("http://", "https://")):
        raise _Unreachable(f"the witness URL {url!r} is neither http nor https")
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked above)
        url.rstrip("/") + "/add-checkpoint",
        data=body,
        method="POST",
        headers={"Content-Type": "text/plain; charset=utf-8"},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            return WitnessAnswer(
                response.status, response.headers.get("Content-Type", ""), response.read(16384).decode()
            )
    except urllib.error.HTTPError as exc:
        text = exc.read(4096).decode("utf-8", errors="replace")
        if exc.code >= 500:
            raise _Unreachable(f"the witness answered {exc.code}") from exc
        return WitnessAnswer(exc.code, exc.headers.get("Content-Type", ""), text)
    except (urllib.error.URLError, OSError, UnicodeDecodeError) as exc:
        raise _Unreachable(f"cannot reach the witness: {exc}") from exc


def _request_body(checkpoint: LogCheckpoint, old_size: int) -> bytes:
    proof = consistency_proof(DatabaseTiles(), old_size, checkpoint.size) if old_size else []
    lines = [f"old {old_size}", *(base64.b64encode(node).decode() for node in proof)]
    return ("\n".join(lines) + "\n\n" + checkpoint.note).encode("utf-8")


def _cosignature(checkpoint: LogCheckpoint, answer: WitnessAnswer, cosigner: note.Verifier) -> str:
    """The witness's own lines of a 200 answer, once they verify (others' lines dropped)."""
    lines = "".join(line + "\n" for line in answer.body.splitlines() if line)
    note.open_cosignature(checkpoint.note + lines, cosigner)
    return "".join(note.lines_signed_by(note.note_text(checkpoint.note) + "\n" + lines, cosigner))


def _refused(checkpoint: LogCheckpoint, status: int, reason: str) -> str:
    reason = reason.strip()[:1000] or "(no reason given)"
    refusal = f"{status}: {reason}"
    logger.error(
        "public log: the witness REFUSED checkpoint %s (%s); it stays published with the log's "
        "signature alone",
        checkpoint.size,
        refusal,
    )
    WITNESS_REQUESTS.labels(outcome="refused").inc()
    LogCheckpoint.objects.filter(pk=checkpoint.pk).update(witness_refusal=refusal)
    try:
        audit_record(
            action=AuditAction.TLOG_WITNESS_REFUSED,
            outcome=AuditEvent.Outcome.REFUSED,
            actor_label="séquenceur",
            object_type="checkpoint",
            object_id=checkpoint.size,
            details={
                "size": checkpoint.size,
                "witness": settings.TLOG_WITNESS_URL,
                "status": status,
                "reason": reason,
            },
        )
    except Exception:
        logger.exception("the witness's refusal could not be audited")
    return "refused"


def witness_latest() -> str:
    """Asks the witness to cosign the latest checkpoint when it has neither a cosignature nor a
    refusal. Returns what happened: ``""`` (nothing to ask: no witness, no checkpoint, already
    answered), ``cosigned``, ``refused`` or ``unreachable``."""
    if not settings.TLOG_WITNESS_URL:
        return ""
    checkpoint = LogCheckpoint.objects.order_by("-size").first()
    if checkpoint is None or checkpoint.cosignature or checkpoint.witness_refusal:
        return ""
    try:
        cosigner = note.parse_cosigner_key(settings.TLOG_WITNESS_KEY)
    except note.NoteError as exc:
        logger.error("public log: ESANTE_TLOG_WITNESS_KEY is unreadable (%s): not asking the witness", exc)
        return ""
    old = (
        LogCheckpoint.objects.exclude(cosignature="")
        .filter(size__lte=checkpoint.size)
        .aggregate(Max("size"))["size__max"]
        or 0
    )
    try:
        answer = _post(settings.TLOG_WITNESS_URL, _request_body(checkpoint, old))
        if answer.status == 409 and answer.content_type.startswith("text/x.tlog.size"):
            held = answer.body.strip()
            if not held.isdigit() or int(held) > checkpoint.size or int(held) == old:
                return _refused(
                    checkpoint,
                    409,
                    f"the witness holds a checkpoint of size {held}, which this log cannot extend "
                    f"to size {checkpoint.size}",
                )
            answer = _post(settings.TLOG_WITNESS_URL, _request_body(checkpoint, int(held)))
    except _Unreachable as exc:
        logger.warning(
            "public log: checkpoint %s published with the log's signature alone: %s; asked again "
            "at the next pass",
            checkpoint.size,
            exc,
        )
        WITNESS_REQUESTS.labels(outcome="unreachable").inc()
        return "unreachable"
    if answer.status != 200:
        return _refused(checkpoint, answer.status, answer.body)
    try:
        cosignature = _cosignature(checkpoint, answer, cosigner)
    except note.NoteError as exc:
        return _refused(checkpoint, 200, f"the witness's answer is not its valid cosignature: {exc}")
    LogCheckpoint.objects.filter(pk=checkpoint.pk).update(cosignature=cosignature)
    WITNESS_REQUESTS.labels(outcome="cosigned").inc()
    logger.info("public log: checkpoint %s cosigned by the witness %s", checkpoint.size, cosigner.name)
    return "cosigned"
