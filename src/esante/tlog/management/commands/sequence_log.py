import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from esante.tlog.sequencer import SequencerRefused, sequence_batch, sequence_loop
from esante.tlog.witnessing import witness_latest


class Command(BaseCommand):
    help = (
        "Chains the audit events waiting for the chainer (ESANTE_AUDIT_CHAINING=batched), puts "
        "the audit events not yet in the public log into it, in batches (one transaction "
        "each, ESANTE_TLOG_BATCH_SIZE events), and signs a checkpoint after each batch. With "
        "--every SECONDS, keeps running. Refuses events that no longer chain or lack a valid MAC. "
        "Then asks the witness (ESANTE_TLOG_WITNESS_URL), if any, to cosign the latest checkpoint."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, default=0, help="events per batch (default: the setting)")
        parser.add_argument("--every", type=float, default=0, help="keep running, every N seconds")

    def _progress(self, first: int, last: int) -> None:
        self.stdout.write(f"leaves {first}..{last} written, updating the tiles")
        self.stdout.flush()

    def _chained(self, first: int, last: int) -> None:
        self.stdout.write(f"chained events #{first}..#{last}, sequencing them")
        self.stdout.flush()

    def handle(self, *args: Any, **options: Any) -> None:
        total = 0
        try:
            while True:
                result = sequence_batch(
                    limit=options["batch"] or None,
                    progress=self._progress if options["verbosity"] > 1 else None,
                    chained=self._chained if options["verbosity"] > 1 else None,
                )
                if not result.added:
                    break
                total += result.added
                self.stdout.write(f"sequenced {result.added} events: checkpoint {result.size}")
                self.stdout.flush()
        except SequencerRefused as exc:
            raise CommandError(str(exc)) from exc
        if not total:
            self.stdout.write(f"nothing to sequence: tree size {result.size}")
        outcome = witness_latest()
        if outcome:
            self.stdout.write(f"witness: {outcome}")
        if options["every"]:
            sequence_loop(threading.Event(), interval=options["every"])
