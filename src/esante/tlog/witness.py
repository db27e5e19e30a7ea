"""A witness of the public log (C2SP tlog-witness, cosignatures per C2SP tlog-cosignature): a
second party, with its own Ed25519 key, that cosigns a log's checkpoint only once it has checked
that the checkpoint's tree extends the last tree of that log it cosigned. Whoever holds its
cosignature knows that the witness saw no other tree: a split view (two different trees of the
same size shown to two readers) or a rolled-back log cannot get both a log signature and this
witness's cosignature. No Django, no database: ``esante witness`` serves it over HTTP.

``add_checkpoint(body)`` is the protocol's ``POST <prefix>/add-checkpoint``: the body is an
``old <size>`` line, up to 63 consistency proof lines (base64 hashes), an empty line and the
signed checkpoint. Each check answers as the specification says:

- 400: a malformed request, or an old size above the checkpoint's size;
- 404: a checkpoint of a log this witness does not know (by its origin);
- 403: no valid signature by a key this witness trusts for that log;
- 409 (``text/x.tlog.size``, the size it last cosigned): the old size is not the size of the
  last checkpoint it cosigned for that log (a client behind, or a rolled-back log);
- 409 (a plain reason): the same size as the last one cosigned with another root (split view);
- 422: the consistency proof does not prove that the new tree extends the last one cosigned.

Otherwise it writes the new checkpoint into its state file (atomically: a temporary file,
fsync'ed, renamed over the old one, the directory fsync'ed) and only then answers 200 with its
cosignature line. Checking the old size and writing the new state happen under one lock (a
thread lock and an exclusive ``flock`` on the state file's lock file, in case two witness
processes share it), so two concurrent requests can never roll the state back.
"""

import base64
import binascii
import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from . import merkle, note

logger = logging.getLogger("esante.tlog.witness")

MAX_PROOF_LINES = 63
MAX_BODY_BYTES = 16 * 1024
SIZE_CONTENT_TYPE = "text/x.tlog.size"


class WitnessRefusal(Exception):
    """The witness does not cosign: ``status`` and the body it answers with."""

    def __init__(self, status: int, reason: str, *, content_type: str = "text/plain; charset=utf-8") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.content_type = content_type


class WitnessStateError(Exception):
    """The state file is unreadable: the witness must not start (a reset state would let a
    rolled-back log through)."""


@dataclass(frozen=True)
class Cosigned:
    """The last checkpoint the witness cosigned for one log."""

    size: int
    root: bytes
    checkpoint: str  # the checkpoint's text (origin, size, root, extension lines)
    timestamp: int


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The witness's private key (PEM, PKCS #8), created with mode 0600 on first use; an existing
    file is never overwritten (created under a temporary name, then hard-linked into place)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return loaded


def read_state(path: Path) -> dict[str, Cosigned]:
    """{origin: last cosigned checkpoint}; empty when the file does not exist yet."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {
            origin: Cosigned(
                int(entry["size"]),
                base64.b64decode(entry["root"], validate=True),
                str(entry["checkpoint"]),
                int(entry["timestamp"]),
            )
            for origin, entry in data["logs"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise WitnessStateError(f"the witness's state file {path} is unreadable: {exc}") from exc


def write_state(path: Path, state: dict[str, Cosigned]) -> None:
    """Replaces the state file atomically and durably."""
    record = {
        "logs": {
            origin: {
                "size": c.size,
                "root": base64.b64encode(c.root).decode(),
                "checkpoint": c.checkpoint,
                "timestamp": c.timestamp,
            }
            for origin, c in sorted(state.items())
        }
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(record, indent=1) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@dataclass(frozen=True)
class Request:
    old_size: int
    proof: list[bytes]
    checkpoint_note: str


def parse_request(body: bytes) -> Request:
    """An ``add-checkpoint`` body; raises WitnessRefusal(400) when malformed."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WitnessRefusal(400, "the request is not UTF-8") from None
    head, separator, checkpoint_note = text.partition("\n\n")
    if not separator:
        raise WitnessRefusal(400, "the request has no empty line before the checkpoint")
    lines = head.split("\n")
    old_line, proof_lines = lines[0], lines[1:]
    size_text = old_line.removeprefix("old ")
    if (
        not old_line.startswith("old ")
        or not size_text.isascii()
        or not size_text.isdigit()
        or str(int(size_text)) != size_text
    ):
        raise WitnessRefusal(400, "the first line must be 'old <size>' (decimal, no leading zero)")
    if len(proof_lines) > MAX_PROOF_LINES:
        raise WitnessRefusal(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for line in proof_lines:
        try:
            node = base64.b64decode(line, validate=True)
        except (ValueError, binascii.Error):
            raise WitnessRefusal(400, "a consistency proof line is not base64") from None
        if len(node) != merkle.HASH_SIZE:
            raise WitnessRefusal(400, "a consistency proof line is not a 32-byte hash")
        proof.append(node)
    return Request(int(size_text), proof, checkpoint_note)


class Witness:
    """Cosigns checkpoints of the logs it knows (``logs``: origin -> the log's verifier)."""

    def __init__(
        self,
        *,
        name: str,
        key: Ed25519PrivateKey,
        logs: dict[str, note.Verifier],
        state_path: Path,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.key = key
        self.logs = logs
        self.state_path = state_path
        self.clock = clock
        self.verifier_key = note.verifier_key(name, key.public_key(), note.ALG_COSIGNATURE_V1)
        read_state(state_path)  # refuses to start on an unreadable state
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.state_path.with_name(self.state_path.name + ".lock"), "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _open(self, checkpoint_note: str) -> note.Checkpoint:
        try:
            checkpoint = note.parse_checkpoint(note.note_text(checkpoint_note), checkpoint_note)
        except note.NoteError as exc:
            raise WitnessRefusal(400, f"malformed checkpoint: {exc}") from exc
        verifier = self.logs.get(checkpoint.origin)
        if verifier is None:
            raise WitnessRefusal(404, f"unknown log {checkpoint.origin!r}")
        try:
            note.open_note(checkpoint_note, verifier)
        except note.NoteError as exc:
            raise WitnessRefusal(
                403, f"the checkpoint is not validly signed by the log's key ({verifier.name}): {exc}"
            ) from exc
        return checkpoint

    def add_checkpoint(self, body: bytes) -> str:
        """The cosignature line on the submitted checkpoint; raises WitnessRefusal (state unchanged)."""
        return self._cosign(body)[0]

    def _cosign(self, body: bytes) -> tuple[str, note.Checkpoint]:
        request = parse_request(body)
        checkpoint = self._open(request.checkpoint_note)
        origin = checkpoint.origin
        if request.old_size > checkpoint.size:
            raise WitnessRefusal(
                400, f"old size {request.old_size} is above the checkpoint's size {checkpoint.size}"
            )
        with self._locked():
            state = read_state(self.state_path)
            last = state.get(origin)
            last_size = last.size if last is not None else 0
            if request.old_size != last_size:
                raise WitnessRefusal(409, f"{last_size}\n", content_type=SIZE_CONTENT_TYPE)
            if last is None:
                if request.proof:
                    raise WitnessRefusal(400, "the consistency proof must be empty from size 0")
            elif checkpoint.size == last.size:
                if checkpoint.root != last.root:
                    raise WitnessRefusal(
                        409,
                        f"split view: another tree of size {last.size} was cosigned, with root "
                        f"{base64.b64encode(last.root).decode()}; this one has root "
                        f"{base64.b64encode(checkpoint.root).decode()}",
                    )
                if request.proof:
                    raise WitnessRefusal(422, "the consistency proof must be empty for equal sizes")
            else:
                try:
                    merkle.verify_consistency(
                        last.size, checkpoint.size, request.proof, last.root, checkpoint.root
                    )
                except merkle.ProofError as exc:
                    raise WitnessRefusal(
                        422,
                        f"the tree of size {checkpoint.size} is not proven to extend the tree of size "
                        f"{last.size} cosigned before ({exc})",
                    ) from exc
            timestamp = int(self.clock())
            if last is not None and timestamp < last.timestamp:
                timestamp = last.timestamp  # never a cosignature dated before the previous one
            state[origin] = Cosigned(checkpoint.size, checkpoint.root, checkpoint.text, timestamp)
            write_state(self.state_path, state)
        return note.cosign(checkpoint.text, self.name, self.key, timestamp), checkpoint

    def handle(self, body: bytes) -> tuple[int, str, str]:
        """(status, content type, body) of the answer to an ``add-checkpoint`` request; every
        refusal logged with its reason (checkpoints are public: nothing secret in them)."""
        try:
            line, checkpoint = self._cosign(body)
        except WitnessRefusal as refusal:
            if refusal.content_type == SIZE_CONTENT_TYPE:
                logger.warning(
                    "witness REFUSED a checkpoint (409): its old size is not %s, the size last cosigned",
                    refusal.reason.strip(),
                )
            else:
                logger.warning("witness REFUSED a checkpoint (%s): %s", refusal.status, refusal.reason)
            reason = refusal.reason if refusal.reason.endswith("\n") else refusal.reason + "\n"
            return refusal.status, refusal.content_type, reason
        logger.info("witness cosigned checkpoint %s of %s", checkpoint.size, checkpoint.origin)
        return 200, "text/plain; charset=utf-8", line


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the protocol asks
    timeout = 30  # a client that stops sending does not hold a thread for ever
    server: "WitnessServer"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        logger.debug("witness: %s %s", self.address_string(), format % args)

    def _answer(self, status: int, content_type: str, body: str) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/key":
            self._answer(200, "text/plain; charset=utf-8", self.server.witness.verifier_key + "\n")
        elif self.path == "/add-checkpoint":
            self._answer(405, "text/plain; charset=utf-8", "add-checkpoint takes a POST\n")
        else:
            self._answer(404, "text/plain; charset=utf-8", "not found\n")

    def do_POST(self) -> None:  # noqa: N802
        if self.path != "/add-checkpoint":
            self._answer(404, "text/plain; charset=utf-8", "not found\n")
            return
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            self.close_connection = True
            self._answer(411, "text/plain; charset=utf-8", "a Content-Length is required\n")
            return
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True
            self._answer(413, "text/plain; charset=utf-8", f"the request exceeds {MAX_BODY_BYTES} bytes\n")
            return
        body = self.rfile.read(int(length))
        self._answer(*self.server.witness.handle(body))


class WitnessServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], witness: Witness) -> None:
        self.witness = witness
        super().__init__(address, _Handler)
