"""``esante run_jobs``: the consumer of the job queue (Huey), in the foreground.

``esante serve`` and ``esante demo`` start one themselves; in production (``ESANTE_QUEUE=redis``)
run it as a service of its own, on one host or several. SIGINT or SIGTERM stop it: SIGINT lets
the running jobs finish first.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from esante.core import jobs


class Command(BaseCommand):
    help = "Runs the job queue's consumer (certified copies, eDispensation documents, the follow-up sweep)."

    def add_arguments(self, parser: CommandParser) -> None:
        from django.conf import settings

        parser.add_argument("--workers", type=int, default=settings.ESANTE_QUEUE_WORKERS)
        parser.add_argument(
            "--worker-type", choices=["thread", "process"], default="thread", help="default: thread"
        )
        parser.add_argument("--no-periodic", action="store_true", help="do not run the periodic sweep")
        parser.add_argument(
            "--max-delay",
            type=float,
            default=0.5,
            metavar="SECONDS",
            help="longest wait between two looks at an empty SQLite queue (default 0.5: a copy is "
            "ready soon after its commit; Redis wakes the workers at once)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if jobs.queue.immediate:
            raise CommandError("ESANTE_QUEUE=immediate runs each job in its caller: nothing to consume.")
        jobs.discover()
        self.stdout.write(
            f"job queue: {jobs.queue.mode} ({jobs.queue.name}), "
            f"{options['workers']} {options['worker_type']} worker(s)"
        )
        self.stdout.flush()
        consumer = jobs.queue.create_consumer(
            workers=options["workers"],
            worker_type=options["worker_type"],
            periodic=not options["no_periodic"],
            max_delay=options["max_delay"],
            check_worker_health=True,
        )
        consumer.run()
