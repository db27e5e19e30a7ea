from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from esante.accounts.models import LoginThrottle
from esante.accounts.services import login_throttle_lift, login_throttles_purge
from esante.accounts.throttling import client_network


class Command(BaseCommand):
    help = (
        "Supprime les compteurs d'échecs de connexion devenus inutiles (aucun blocage en cours, "
        "inchangés depuis --days jours) ; avec --lift-address, lève d'abord la limite d'une adresse."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=30, help="ancienneté minimale (jours, 30)")
        parser.add_argument(
            "--lift-address",
            action="append",
            default=[],
            metavar="ADRESSE",
            help="lève la limite de cette adresse (IPv6 : son /64), connexion et activation",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["days"] < 1:
            raise CommandError("refus : --days doit être au moins 1.")
        for address in options["lift_address"]:
            network = client_network(address)
            rows = LoginThrottle.objects.filter(
                scope__in=[LoginThrottle.Scope.ADDRESS, LoginThrottle.Scope.ACTIVATION], key=network
            )
            if not rows:
                raise CommandError(f"refus : aucun compteur pour l'adresse {address}.")
            for throttle in rows:
                login_throttle_lift(throttle=throttle, actor_label="system:cli")
            self.stdout.write(f"limite levée : {network}")
        purged = login_throttles_purge(older_than_days=options["days"], actor_label="system:cli")
        self.stdout.write(f"compteurs supprimés : {purged}")
