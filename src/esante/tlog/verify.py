"""The standalone verifier of the public log: ``python -m esante.tlog.verify``.

It needs only the log's verifier key and its public URL: no Django, no database, nothing of the
platform but this module, ``note`` and ``merkle``. It fetches the latest signed checkpoint and
checks its signature; checks that it extends the checkpoints it has seen before (kept in a local
JSON file), with a consistency proof, so a log rolled back or forked (a different tree shown to
this reader) is found; and, given a journal entry (its leaf index, its salt and the event's
canonical text, as the patient's journal shows them), checks that the entry is in the log. It
says in plain words what it verified, and exits 0 when everything verified, 1 when something
did not (the reason printed), 2 when it could not check (usage, network).

    python -m esante.tlog.verify --url https://esante.example/journal --key 'esante.lu/edocuments+…'
    python -m esante.tlog.verify --url … --key key.txt --index 41 --salt HEX --event event.json
    python -m esante.tlog.verify --url … --key … --witness-key 'witness.esante.lu/w1+…'

With ``--witness-key`` (repeatable), the checkpoint must also carry that witness's valid
cosignature (C2SP tlog-cosignature): the witness vouches that it saw no other tree of this log.
"""

import argparse
import base64
import datetime
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import merkle, note
from .leaf import commitment

TIMEOUT_SECONDS = 10.0
CLOCK_SKEW_SECONDS = 600  # a cosignature dated further in the future is refused


class VerificationFailed(Exception):
    """The log does not prove what it should: a bad signature, a rollback, a fork, an entry not
    included. The message says which, in plain words."""


class CannotCheck(Exception):
    """The check could not be made (network, a malformed answer, usage)."""


Fetch = Callable[[str], bytes]


def http_fetch(base_url: str) -> Fetch:
    if not base_url.startswith(("http://", "https://")):
        raise CannotCheck(f"the log's URL {base_url!r} is neither http nor https")
    base = base_url.rstrip("/")

    def fetch(path: str) -> bytes:
        try:
            with urllib.request.urlopen(f"{base}/{path}", timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            raise CannotCheck(f"{base}/{path} answered {exc.code}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise CannotCheck(f"cannot reach {base}/{path}: {exc}") from exc

    return fetch


@dataclass(frozen=True)
class Seen:
    size: int
    root: bytes
    note: str


def read_seen(path: Path) -> list[Seen]:
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [
            Seen(int(s["size"]), base64.b64decode(s["root"]), str(s["note"])) for s in data["checkpoints"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CannotCheck(f"the file of checkpoints seen before, {path}, is unreadable: {exc}") from exc


def write_seen(path: Path, seen: list[Seen]) -> None:
    record = {
        "checkpoints": [
            {"size": s.size, "root": base64.b64encode(s.root).decode(), "note": s.note} for s in seen
        ]
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def _proof(fetch: Fetch, path: str) -> list[bytes]:
    try:
        body = json.loads(fetch(path))
        return [base64.b64decode(node, validate=True) for node in body["proof"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise CannotCheck(f"malformed proof from {path}: {exc}") from exc


def check_cosignatures(
    checkpoint: note.Checkpoint, cosigners: list[note.Verifier], say: Callable[[str], None]
) -> None:
    """Each witness of ``cosigners`` must have validly cosigned the checkpoint; without any, the
    other signature lines are counted and said unchecked. Raises VerificationFailed."""
    others = [name for name in note.signature_names(checkpoint.note) if name != checkpoint.origin]
    if not cosigners:
        if others:
            say(
                f"The checkpoint also carries {len(others)} other signature(s) ({', '.join(others)}), "
                "not checked: give --witness-key to require a witness's cosignature."
            )
        return
    for cosigner in cosigners:
        try:
            stamp = note.open_cosignature(checkpoint.note, cosigner)
        except note.NoteError as exc:
            raise VerificationFailed(
                f"the checkpoint is NOT cosigned by the witness {cosigner.name}: {exc}; nothing "
                "shows that this witness saw the same log"
            ) from exc
        if stamp > time.time() + CLOCK_SKEW_SECONDS:
            raise VerificationFailed(f"the cosignature of the witness {cosigner.name} is dated in the future")
        when = datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        say(
            f"The witness {cosigner.name} ({cosigner.key_id.hex()}) cosigned this checkpoint on {when}: "
            "it had checked that this tree extends every tree of this log it cosigned before, so "
            "everyone this witness vouches to sees the same log."
        )


def check_checkpoint(
    fetch: Fetch,
    verifier: note.Verifier,
    seen: list[Seen],
    say: Callable[[str], None],
    cosigners: list[note.Verifier] | None = None,
) -> note.Checkpoint:
    """The latest checkpoint, its signature (and the witnesses' cosignatures asked for) verified
    and its consistency with the largest checkpoint seen before proven. Raises
    VerificationFailed."""
    text = fetch("checkpoint").decode("utf-8", errors="replace")
    try:
        checkpoint = note.open_checkpoint(text, verifier, verifier.name)
    except note.NoteError as exc:
        raise VerificationFailed(
            f"the log's checkpoint is not validly signed by {verifier.name}: {exc}"
        ) from exc
    say(
        f"The checkpoint of the log {checkpoint.origin} is signed by its key ({verifier.name}+"
        f"{verifier.key_id.hex()}): the log holds {checkpoint.size} events."
    )
    check_cosignatures(checkpoint, cosigners or [], say)
    if not seen:
        say("No checkpoint was seen before: this one is the reference for the next checks.")
        return checkpoint
    last = max(seen, key=lambda s: s.size)
    if checkpoint.size < last.size:
        raise VerificationFailed(
            f"the log was ROLLED BACK: it now shows {checkpoint.size} events, but a checkpoint of "
            f"{last.size} events was seen before"
        )
    if checkpoint.size == last.size:
        if checkpoint.root != last.root:
            raise VerificationFailed(
                f"the log is FORKED: two different trees of {last.size} events were signed "
                "(the one seen before and the one shown now)"
            )
        say(f"It is the same checkpoint as the one seen before ({last.size} events).")
        return checkpoint
    proof = _proof(fetch, f"proof/consistency?from={last.size}&to={checkpoint.size}")
    try:
        merkle.verify_consistency(last.size, checkpoint.size, proof, last.root, checkpoint.root)
    except merkle.ProofError as exc:
        raise VerificationFailed(
            f"the log is FORKED or was rewritten: the tree of {checkpoint.size} events does not "
            f"extend the tree of {last.size} events seen before ({exc})"
        ) from exc
    say(
        f"It extends the checkpoint seen before ({last.size} events): the log only grew; none of "
        "the events seen before was changed, removed or reordered."
    )
    return checkpoint


def check_entry(
    fetch: Fetch,
    checkpoint: note.Checkpoint,
    *,
    index: int,
    salt: bytes,
    event: bytes,
    say: Callable[[str], None],
) -> None:
    """Checks that the journal entry (the event's canonical bytes, its salt, its leaf index) is in
    the tree of ``checkpoint``. Raises VerificationFailed."""
    if not 0 <= index < checkpoint.size:
        raise VerificationFailed(
            f"entry {index} is NOT in the log: the checkpoint holds only {checkpoint.size} events"
        )
    try:
        leaf = merkle.leaf_hash(commitment(salt, event))
    except ValueError as exc:
        raise CannotCheck(str(exc)) from exc
    proof = _proof(fetch, f"proof/inclusion?index={index}&size={checkpoint.size}")
    try:
        merkle.verify_inclusion(index, checkpoint.size, leaf, proof, checkpoint.root)
    except merkle.ProofError as exc:
        raise VerificationFailed(
            f"entry {index} is NOT in the log as shown: the event or its salt differs from what the "
            f"log holds at that place ({exc})"
        ) from exc
    say(
        f"The journal entry {index} is in the log, in the tree of checkpoint {checkpoint.size}: the "
        "event you hold is exactly the one everybody else's copy of the log holds."
    )


def load_verifier(key: str, alg: int = note.ALG_ED25519) -> note.Verifier:
    path = Path(key)
    text = path.read_text(encoding="utf-8").strip() if "+" not in key and path.exists() else key
    try:
        return note.parse_verifier_key(text, alg)
    except note.NoteError as exc:
        raise CannotCheck(f"the verifier key is unreadable: {exc}") from exc


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m esante.tlog.verify", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--url", required=True, help="the public log's URL (…/journal)")
    parser.add_argument("--key", required=True, help="the verifier key (name+keyid+key) or a file holding it")
    parser.add_argument(
        "--state",
        default=str(Path.home() / ".esante-journal-checkpoints.json"),
        help="the checkpoints seen before",
    )
    parser.add_argument(
        "--witness-key",
        action="append",
        default=[],
        help="a witness's verifier key (or a file holding it) whose cosignature is required (repeatable)",
    )
    parser.add_argument("--index", type=int, help="a journal entry's leaf index")
    parser.add_argument("--salt", help="its salt, in hex (shown with the entry)")
    parser.add_argument("--event", help="a file holding the event's canonical text (shown with the entry)")
    options = parser.parse_args(argv)
    try:
        if (options.index is None) != (options.salt is None) or (options.index is None) != (
            options.event is None
        ):
            raise CannotCheck("--index, --salt and --event go together")
        verifier = load_verifier(options.key)
        cosigners = [load_verifier(key, note.ALG_COSIGNATURE_V1) for key in options.witness_key]
        fetch = http_fetch(options.url)
        state = Path(options.state)
        seen = read_seen(state)
        checkpoint = check_checkpoint(fetch, verifier, seen, out, cosigners)
        if all(s.size != checkpoint.size for s in seen):
            write_seen(state, [*seen, Seen(checkpoint.size, checkpoint.root, checkpoint.note)])
        if options.index is not None:
            try:
                salt = bytes.fromhex(options.salt)
                event = Path(options.event).read_bytes()
            except (ValueError, OSError) as exc:
                raise CannotCheck(f"unreadable entry: {exc}") from exc
            check_entry(fetch, checkpoint, index=options.index, salt=salt, event=event, say=out)
    except VerificationFailed as exc:
        out(f"NOT VERIFIED: {exc}.")
        return 1
    except CannotCheck as exc:
        out(f"cannot check: {exc}")
        return 2
    out("Everything above was verified.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
