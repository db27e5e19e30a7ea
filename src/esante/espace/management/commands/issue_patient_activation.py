from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from esante.espace.accounts import patient_letter_issue
from esante.espace.letters import patient_letter_pdf
from esante.patients.matricule import compact
from esante.patients.models import Patient


class Command(BaseCommand):
    help = (
        "Ouvre l'espace patient d'un patient de l'index et émet un nouveau code d'activation "
        "(les courriers précédents sont révoqués) ; affiche « activation code: CODE » et écrit "
        "le courrier en PDF."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--matricule", required=True)
        parser.add_argument("--pdf", type=Path, help="chemin du courrier PDF à écrire")

    def handle(self, *args: Any, **options: Any) -> None:
        patient = Patient.objects.filter(matricule=compact(options["matricule"])).first()
        if patient is None:
            raise CommandError(f"refus : aucun patient de l'index n'a le matricule {options['matricule']}.")
        pdf_path: Path | None = options["pdf"]
        if pdf_path is not None and not pdf_path.parent.is_dir():
            raise CommandError(f"refus : le dossier {pdf_path.parent} n'existe pas.")
        try:
            letter, code = patient_letter_issue(patient=patient, actor_label="system:cli")
        except ValidationError as exc:
            raise CommandError("refus : " + " ".join(exc.messages)) from exc
        self.stdout.write(f"activation code: {code}")
        if pdf_path is not None:
            pdf_path.write_bytes(patient_letter_pdf(letter=letter, code=code))
            self.stdout.write(f"courrier : {pdf_path}")
