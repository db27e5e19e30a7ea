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
        "since the last signed head no longer chain from it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--every", type=float, default=0, help="keep running, signing new events every N seconds"
        )

    def _signed(self, head: SignedHead) -> None:
        self.stdout.write(f"anchored head #{head.sequence} {head.hash} in {settings.AUDIT_HEADS_FILE}")
        self.stdout.flush()

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            head = audit_anchor()
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
