import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from esante.fhir.throttling import purge


class Command(BaseCommand):
    help = (
        "Supprime les compteurs de l'API (demandes de jeton, requêtes refusées) dont la fenêtre a "
        "commencé il y a plus de --hours heures (24) : aucun d'eux ne limite plus personne."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--hours", type=int, default=24, help="ancienneté minimale (heures, 24)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["hours"] < 1:
            raise CommandError("refus : --hours doit être au moins 1.")
        purged = purge(timezone.now() - datetime.timedelta(hours=options["hours"]))
        self.stdout.write(f"compteurs supprimés : {purged}")
