from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from esante.accounts.tls_origin import certificate_origin_config
from esante.demo.serving import run


class Command(BaseCommand):
    help = "Serves the portal and the API (gunicorn). In production, put nginx in front (see deploy/)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--workers", type=int, default=2)
        parser.add_argument("--threads", type=int, default=4)
        parser.add_argument(
            "--no-jobs",
            action="store_true",
            help="do not run the job queue's consumer here (run `esante run_jobs` elsewhere)",
        )
        parser.add_argument(
            "--no-leader",
            action="store_true",
            help="never run the audit signer and the public log's sequencer here (never take the "
            "leader lock): for an app server without the shared audit directory",
        )
        parser.add_argument(
            "--certificate-port",
            type=int,
            default=settings.ESANTE_CERTIFICATE_PORT,
            help="also serve the certificate origin (HTTPS, client certificates) on this port; "
            "0 (default, ESANTE_CERTIFICATE_PORT): nginx serves it (deploy/nginx.conf)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"eSanté eDocuments: http://{options['host']}:{options['port']}/")
        origin = None
        if options["certificate_port"]:
            origin = certificate_origin_config(host=options["host"], port=options["certificate_port"])
            if not settings.ESANTE_CERTIFICATE_ORIGIN:
                # Read by the portal's workers, which gunicorn forks from this process.
                settings.ESANTE_CERTIFICATE_ORIGIN = origin.url
            self.stdout.write(
                f"certificate origin: {origin.url}/ (portal links: {settings.ESANTE_CERTIFICATE_ORIGIN})"
            )
        run(
            host=options["host"],
            port=options["port"],
            workers=options["workers"],
            threads=options["threads"],
            certificate_origin=origin,
            jobs=not options["no_jobs"],
            leader=not options["no_leader"],
        )
