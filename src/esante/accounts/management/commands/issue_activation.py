from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from esante.accounts.letters import activation_letter_pdf
from esante.accounts.models import Professional
from esante.accounts.services import activation_letter_issue
from esante.patients.matricule import compact


class Command(BaseCommand):
    help = (
        "Émet un nouveau code d'activation (les courriers précédents sont révoqués), "
        "affiche « activation code: CODE » et écrit le courrier en PDF."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--matricule", required=True)
        parser.add_argument("--pdf", type=Path, help="chemin du courrier PDF à écrire")

    def handle(self, *args: Any, **options: Any) -> None:
        professional = Professional.objects.filter(matricule=compact(options["matricule"])).first()
        if professional is None:
            raise CommandError(
                f"refus : aucun professionnel enregistré avec le matricule {options['matricule']}."
            )
        pdf_path: Path | None = options["pdf"]
        if pdf_path is not None and not pdf_path.parent.is_dir():
            raise CommandError(f"refus : le dossier {pdf_path.parent} n'existe pas.")
        try:
            letter, code = activation_letter_issue(professional=professional, actor_label="system:cli")
        except ValidationError as exc:
            raise CommandError("refus : " + " ".join(exc.messages)) from exc
        self.stdout.write(f"activation code: {code}")
        if pdf_path is not None:
            pdf_path.write_bytes(activation_letter_pdf(letter=letter, code=code))
            self.stdout.write(f"courrier : {pdf_path}")
