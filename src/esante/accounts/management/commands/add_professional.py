from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from esante.accounts.services import professional_register

_FIELDS = {
    "matricule": "matricule",
    "profession": "profession",
    "last_name": "nom",
    "first_name": "prénom",
    "email": "e-mail",
    "mobile": "mobile",
    "organisation": "organisation",
}


class Command(BaseCommand):
    help = "Enregistre un professionnel du registre national (état « registered »)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--matricule", required=True)
        parser.add_argument("--profession", required=True, help="pharmacist, doctor, dentist, nurse, ...")
        parser.add_argument("--last-name", required=True)
        parser.add_argument("--first-name", required=True)
        parser.add_argument("--email", required=True)
        parser.add_argument("--mobile", required=True)
        parser.add_argument("--organisation", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            professional = professional_register(
                matricule=options["matricule"],
                profession=options["profession"],
                last_name=options["last_name"],
                first_name=options["first_name"],
                email=options["email"],
                mobile=options["mobile"],
                organisation=options["organisation"],
                actor_label="system:cli",
            )
        except ValidationError as exc:
            lines = [
                f"{_FIELDS.get(name, name)} : {message}"
                for name, messages in exc.message_dict.items()
                for message in messages
            ]
            raise CommandError("refus : " + "; ".join(lines)) from exc
        self.stdout.write(f"professionnel enregistré : {professional} — matricule {professional.matricule}")
