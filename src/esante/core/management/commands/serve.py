from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from esante.core.serving import run


class Command(BaseCommand):
    help = "Serves the portal and the API (gunicorn). In production, put nginx in front (see deploy/)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--workers", type=int, default=2)
        parser.add_argument("--threads", type=int, default=4)

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"eSanté eDocuments: http://{options['host']}:{options['port']}/")
        run(
            host=options["host"], port=options["port"], workers=options["workers"], threads=options["threads"]
        )
