"""``esante dispensation_follow_up``: completes dispensations whose eDispensation document or
certified copy was not produced after the commit (a lost job, a crash, a storage outage). The
consumer of the job queue runs the same sweep every 5 minutes."""

import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from esante.dispensing.certification import dispensations_complete


class Command(BaseCommand):
    help = "Files missing eDispensation documents and issues missing certified copies."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=int,
            default=0,
            metavar="SECONDS",
            help="leave out dispensations (and withdrawals) more recent than this: their job may "
            "still be waiting in the queue (default 0: all)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        older = options["older_than"]
        done = dispensations_complete(older_than=datetime.timedelta(seconds=older) if older else None)
        self.stdout.write(f"dispensations completed: {done}")
