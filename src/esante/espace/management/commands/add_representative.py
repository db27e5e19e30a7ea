import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from esante.espace.models import PatientAccount
from esante.espace.services import representative_add
from esante.patients.matricule import compact
from esante.patients.models import Patient


class Command(BaseCommand):
    help = (
        "Enregistre un représentant légal (parent d'un mineur, tuteur) : avec son propre espace "
        "patient, il agit pour le patient représenté ; chaque action le dit au journal du patient."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--representative", required=True, help="matricule du représentant")
        parser.add_argument("--patient", required=True, help="matricule du patient représenté")
        parser.add_argument("--kind", required=True, choices=["parent", "guardian"])
        parser.add_argument(
            "--until", type=datetime.date.fromisoformat, help="fin (AAAA-MM-JJ), p. ex. la majorité"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        account = PatientAccount.objects.filter(patient__matricule=compact(options["representative"])).first()
        if account is None:
            raise CommandError(
                f"refus : {options['representative']} n'a pas d'espace patient "
                "(esante issue_patient_activation d'abord)."
            )
        patient = Patient.objects.filter(matricule=compact(options["patient"])).first()
        if patient is None:
            raise CommandError(f"refus : aucun patient de l'index n'a le matricule {options['patient']}.")
        until: datetime.date | None = options["until"]
        ends_at = (
            datetime.datetime.combine(until, datetime.time.min, tzinfo=timezone.get_current_timezone())
            if until
            else None
        )
        try:
            representation = representative_add(
                representative=account,
                patient=patient,
                kind=options["kind"],
                ends_at=ends_at,
                actor_label="system:cli",
            )
        except ValidationError as exc:
            raise CommandError("refus : " + " ".join(exc.messages)) from exc
        self.stdout.write(f"représentation {representation.pk} enregistrée")
