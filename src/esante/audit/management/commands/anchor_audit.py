import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from esante.audit.anchoring import AnchorRefused, SignedHead, WitnessError, anchor_loop, audit_anchor


class Command(BaseCommand):
    help = (
        "Signs the audit chain's head and appends it to the heads file and its copies (and sends it to "
        "the witness). With --every SECONDS, keeps running: signs at most SECONDS after a new event, "
        "and as soon as ESANTE_AUDIT_ANCHOR_EVERY_EVENTS events wait. Refuses to sign when the events "
        "since the last signed head no longer chain from it or lack a valid MAC, and when the heads "
        "file is behind its copies, the witness or the signer's own state file."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--every", type=float, default=0, help="keep running, signing new events every N seconds"
        )
        parser.add_argument(
            "--initial",
            action="store_true",
            help="sign a first head over a trail of more than ESANTE_AUDIT_INITIAL_MAX_EVENTS events, "
            "or with the signer's state file missing, or over legacy events without a MAC (after an "
            "upgrade): you vouch for the trail as it is; never overrides a heads file behind its copies "
            "or the signer's state",
        )

    def _signed(self, head: SignedHead) -> None:
        self.stdout.write(f"anchored head #{head.sequence} {head.hash} in {settings.AUDIT_HEADS_FILE}")
        self.stdout.flush()

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            head = audit_anchor(initial=options["initial"])
        except (AnchorRefused, WitnessError) as exc:
            raise CommandError(str(exc)) from exc
        if head is None:
            self.stdout.write("audit trail empty: nothing to anchor")
        else:
            self._signed(head)
        if options["every"]:
            anchor_loop(
                threading.Event(),
                interval=options["every"],
                every_events=settings.AUDIT_ANCHOR_EVERY_EVENTS,
                on_signed=self._signed,
            )
