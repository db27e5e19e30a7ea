import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from esante.audit.anchoring import audit_anchor


class Command(BaseCommand):
    help = "Signs the audit chain's head and appends it to the heads file (once, or every N seconds)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--every", type=int, default=0, help="keep running, anchoring every N seconds")

    def handle(self, *args: Any, **options: Any) -> None:
        while True:
            head = audit_anchor()
            if head is None:
                self.stdout.write("audit trail empty: nothing to anchor")
            else:
                self.stdout.write(
                    f"anchored head #{head.sequence} {head.hash} in {settings.AUDIT_HEADS_FILE}"
                )
            if not options["every"]:
                return
            time.sleep(options["every"])
