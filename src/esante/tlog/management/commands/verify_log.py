from typing import Any

from django.core.management.base import BaseCommand, CommandError

from esante.tlog.verification import verify_log

EXIT_INTACT = 0
EXIT_BROKEN = 1
EXIT_NO_KEY = 5


class Command(BaseCommand):
    help = (
        "Checks the public log against the audit events and its checkpoints: every leaf opens to its "
        "event, leaves follow the events in order, tiles match the leaves, every checkpoint is validly "
        f"signed over the root of its leaves. Exit status: {EXIT_INTACT} = intact; {EXIT_BROKEN} = "
        f"broken (the first problem named); {EXIT_NO_KEY} = no key to verify the checkpoints with."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        result = verify_log()
        if result.missing_key:
            raise CommandError(f"public log NOT VERIFIED: {result.missing_key}", returncode=EXIT_NO_KEY)
        if not result.ok:
            raise CommandError(f"public log BROKEN: {result.problem}", returncode=EXIT_BROKEN)
        self.stdout.write(
            f"public log intact: {result.leaves} leaves, {result.checkpoints} signed checkpoints "
            f"({result.cosigned} cosigned by the witness); "
            f"{result.waiting} audit events not yet in the log"
        )
