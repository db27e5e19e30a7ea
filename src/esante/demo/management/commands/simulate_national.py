import getpass
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from esante.audit.anchoring import AnchorRefused
from esante.demo.national import holds_data, scaled, simulate_national


class Command(BaseCommand):
    help = (
        "Loads a synthetic national-scale data set at bulk speed (COPY on PostgreSQL): at --scale 1.0, "
        "1.2 M patients, 20 M documents (metadata, one shared content file), 4.5 M prescriptions, 5 M "
        "dispensations, 1.2 M access grants and 50 M chained, signed audit events. Refuses a database "
        "that already holds patients, professionals, documents or audit events unless --force, and "
        "production settings always."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--scale", type=float, required=True, help="1.0 = the national size")
        parser.add_argument("--seed", type=int, default=1, help="random seed (the same seed, the same data)")
        parser.add_argument("--force", action="store_true", help="add to a database that already holds data")

    def handle(self, *args: Any, **options: Any) -> None:
        scale: float = options["scale"]
        if not 0 < scale <= 10:
            raise CommandError("l'échelle doit être comprise entre 0 (exclu) et 10")
        if settings.PRODUCTION:
            raise CommandError(
                "refus : réglages de production actifs (ESANTE_SECRET_KEY défini sans ESANTE_DEBUG). "
                "La simulation ne charge que des bases de test ou de mesure."
            )
        if holds_data() and not options["force"]:
            raise CommandError(
                "la base contient déjà des données (patients, professionnels, documents ou journal "
                "d'audit) : rien n'a été chargé. Utilisez une base vide, ou --force pour ajouter à celle-ci."
            )
        counts = scaled(scale)
        total = sum(counts.values()) + 2 * counts["prescriptions"] + 2 * counts["dispensations"]
        total += counts["patients"]  # the grants, one per patient; lines counted above
        with tqdm(
            total=total,
            unit="lignes",
            unit_scale=True,
            desc="Simulation nationale",
            disable=options["verbosity"] == 0,
            file=self.stderr,
        ) as bar:
            try:
                report = simulate_national(
                    scale=scale,
                    seed=options["seed"],
                    actor_label=f"operator:{getpass.getuser()}",
                    progress=bar.update,
                )
            except AnchorRefused as exc:
                raise CommandError(
                    f"données chargées, mais la tête du journal d'audit n'a pas pu être signée : {exc}"
                ) from exc
        for table, rows in report.rows.items():
            seconds = report.seconds[table]
            rate = rows / seconds if seconds else 0.0
            self.stdout.write(f"{table}: {rows} lignes en {seconds:.1f} s ({rate:,.0f} lignes/s)")
        self.stdout.write(f"journal d'audit vérifié et signé en {report.signing_seconds:.1f} s")
