import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from esante.audit.keys import MissingKeyError, verification_public_key
from esante.tlog import note
from esante.tlog.witness import Witness, WitnessServer, WitnessStateError, load_or_create_key


class Command(BaseCommand):
    help = (
        "Runs a witness of the public log (C2SP tlog-witness): serves POST /add-checkpoint and "
        "cosigns a checkpoint only after checking that its tree extends the last one it cosigned "
        "for that log (kept in its state file); refuses a split view, a rollback and a bad log "
        "signature. Its key is created on first start. GET /key gives its verifier key."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8090, help="0: a free port, printed at start")
        parser.add_argument("--name", default="", help="the witness's key name (ESANTE_TLOG_WITNESS_NAME)")
        parser.add_argument("--key-file", default="", help="its private key (ESANTE_TLOG_WITNESS_KEY_FILE)")
        parser.add_argument(
            "--state-file",
            default="",
            help="the last checkpoints it cosigned (ESANTE_TLOG_WITNESS_STATE_FILE)",
        )
        parser.add_argument(
            "--log-key",
            action="append",
            default=[],
            help="a log's verifier key it trusts (repeatable; default ESANTE_TLOG_WITNESS_LOG_KEYS, "
            "else this platform's own log key)",
        )
        parser.add_argument("--print-key", action="store_true", help="print its verifier key and exit")

    def _log_verifiers(self, keys: list[str]) -> dict[str, note.Verifier]:
        if not keys:
            try:
                keys = [note.verifier_key(settings.TLOG_ORIGIN, verification_public_key())]
            except (MissingKeyError, ValueError) as exc:
                raise CommandError(f"no log key to trust: give --log-key ({exc})") from exc
        verifiers: dict[str, note.Verifier] = {}
        for key in keys:
            try:
                verifier = note.parse_verifier_key(key)
            except note.NoteError as exc:
                raise CommandError(f"unreadable log key {key!r}: {exc}") from exc
            verifiers[verifier.name] = verifier
        return verifiers

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"] or settings.TLOG_WITNESS_NAME
        key_file = Path(options["key_file"] or settings.TLOG_WITNESS_KEY_FILE)
        state_file = Path(options["state_file"] or settings.TLOG_WITNESS_STATE_FILE)
        try:
            key = load_or_create_key(key_file)
            vkey = note.verifier_key(name, key.public_key(), note.ALG_COSIGNATURE_V1)
        except (OSError, ValueError, note.NoteError) as exc:
            raise CommandError(f"the witness's key: {exc}") from exc
        if options["print_key"]:
            self.stdout.write(vkey)
            return
        logs = self._log_verifiers(options["log_key"] or settings.TLOG_WITNESS_LOG_KEYS)
        try:
            witness = Witness(name=name, key=key, logs=logs, state_path=state_file)
        except WitnessStateError as exc:
            raise CommandError(str(exc)) from exc
        try:
            server = WitnessServer((options["host"], options["port"]), witness)
        except OSError as exc:
            raise CommandError(f"cannot listen on {options['host']}:{options['port']}: {exc}") from exc
        host, port = str(server.server_address[0]), int(server.server_address[1])
        self.stdout.write(f"witness {name} listening on http://{host}:{port}")
        self.stdout.write(f"verifier key: {vkey}")
        self.stdout.write(f"logs: {', '.join(sorted(logs))}")
        self.stdout.flush()

        def stop(signum: int, frame: FrameType | None) -> None:
            threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            server.serve_forever()
        finally:
            server.server_close()
