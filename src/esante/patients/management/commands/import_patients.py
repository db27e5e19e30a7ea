import csv
import getpass
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import reset_queries
from tqdm import tqdm

from esante.patients.importing import (
    FileFormatError,
    RowError,
    batched,
    normalise_fields,
    read_csv,
    read_ndjson,
)
from esante.patients.services import patients_import_values


class Command(BaseCommand):
    help = (
        "Imports patients from a CSV file or a FHIR R4 Patient NDJSON file (by extension: .csv, "
        ".ndjson/.jsonl). Idempotent on the matricule; commits in batches; rejected lines are "
        "written to a report with their line number and reason."
    )

    # Django's system checks import every URL configuration and the modules behind it (the FHIR
    # API, the job queue, the storage backends): half the command's start-up time and memory, for
    # nothing a batch import uses. There is no check of this project's own; the server and
    # ``migrate`` still run them.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--format", choices=["csv", "ndjson"], help="default: from the file extension")
        parser.add_argument(
            "--batch-size", type=int, default=20_000, help="rows per transaction (default 20,000)"
        )
        parser.add_argument("--report", type=Path, help="rejected lines report (default: FILE.rejets.csv)")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"fichier introuvable : {path}")
        fmt = options["format"] or ("csv" if path.suffix.lower() == ".csv" else "ndjson")
        if (
            fmt == "ndjson"
            and path.suffix.lower() not in (".ndjson", ".jsonl", ".json")
            and not options["format"]
        ):
            raise CommandError("format inconnu : utilisez --format csv ou --format ndjson")
        report_path: Path = options["report"] or path.with_name(path.name + ".rejets.csv")
        reader = read_csv if fmt == "csv" else read_ndjson
        actor_label = f"operator:{getpass.getuser()}"
        created = updated = unchanged = 0
        rejected = 0
        with (
            path.open("rb") as binary,
            report_path.open("w", encoding="utf-8", newline="") as report_file,
            tqdm(
                total=path.stat().st_size,
                unit="B",
                unit_scale=True,
                desc="Import des patients",
                disable=options["verbosity"] == 0,
                file=self.stderr,
            ) as bar,
        ):
            report = csv.writer(report_file)
            report.writerow(["ligne", "matricule", "motif du rejet"])
            unreported = 0

            def on_bytes(count: int) -> None:
                # The bar is moved every 256 KiB read, not at each line.
                nonlocal unreported
                unreported += count
                if unreported >= 1 << 18:
                    bar.update(unreported)
                    unreported = 0

            def valid_rows() -> Any:
                nonlocal rejected
                for line, row in reader(binary, on_bytes):
                    if isinstance(row, RowError):
                        report.writerow([line, row.matricule, row.reason])
                        rejected += 1
                        continue
                    try:
                        yield line, normalise_fields(row)
                    except ValidationError as exc:
                        report.writerow([line, row[0], "; ".join(exc.messages)])
                        rejected += 1

            try:
                for batch in batched(valid_rows(), options["batch_size"]):
                    result = patients_import_values(rows=batch, source=path.name, actor_label=actor_label)
                    created += result.created
                    updated += result.updated
                    unchanged += result.unchanged
                    for line, matricule, reason in result.rejected:
                        report.writerow([line, matricule, reason])
                        rejected += 1
                    report_file.flush()
                    # With DEBUG on, Django keeps the text of the last 9,000 statements, and a
                    # batch's carry its keys and its creation event (some megabytes): memory
                    # would grow with the file up to that bound. Nothing here reads them.
                    reset_queries()
                bar.update(unreported)
            except FileFormatError as exc:
                raise CommandError(f"{path.name} : {exc}") from exc
        self.stdout.write(
            f"import terminé : {created} créés, {updated} mis à jour, "
            f"{unchanged} inchangés, {rejected} rejetés"
        )
        if rejected:
            self.stdout.write(f"lignes rejetées : {report_path}")
