from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from esante.accounts.demo import DemoProfessional
from esante.audit.anchoring import audit_anchor
from esante.core.services import DemoRefused, demo_check_allowed, demo_load
from esante.core.serving import run


def _professional_line(professional: DemoProfessional) -> str:
    who = f"  {professional.profession} {professional.name}, matricule {professional.matricule}"
    if professional.password:
        return f"{who} : mot de passe {professional.password}, code par e-mail ({professional.email})"
    if professional.activation_code:
        return f"{who} : à activer, code d'activation {professional.activation_code}"
    return f"{who} : {professional.state}"


class Command(BaseCommand):
    help = "Migrates, loads the demo data set (idempotent) and serves the platform on 127.0.0.1."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-serve", action="store_true", help="load the data set and stop")

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError(
                "refus : réglages de production actifs (ESANTE_SECRET_KEY défini sans ESANTE_DEBUG)."
            )
        call_command("migrate", interactive=False, verbosity=0)
        try:
            demo_check_allowed()
            summary = demo_load()
        except DemoRefused as exc:
            raise CommandError(str(exc)) from exc
        audit_anchor()
        url = f"http://127.0.0.1:{options['port']}/"
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "eSanté eDocuments — démonstration",
                    f"  données : {settings.DATABASES['default']['NAME']}"
                    + (
                        " (déjà chargées)"
                        if summary.already_loaded
                        else f" ({summary.patients_created} patients créés)"
                    ),
                    f"  portail : {url}",
                    "  patient du guide : PIG Peppa, matricule 1904112000166",
                    "  pour commencer : « Je suis un professionnel » puis « J'active mon compte ».",
                    "",
                    "Professionnels de démonstration (codes à usage unique : affichés ici et écrits dans "
                    f"{settings.OUTBOX_DIR}) :",
                    *[_professional_line(p) for p in summary.professionals],
                    "",
                ]
            )
        )
        if not options["no_serve"]:
            run(host="127.0.0.1", port=options["port"], workers=2, threads=4)
