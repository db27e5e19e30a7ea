import getpass
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from esante.documents.importing import submissions
from esante.documents.services import (
    DocumentDuplicate,
    DocumentRefused,
    document_submit,
    document_submit_refusal_record,
)


class Command(BaseCommand):
    help = (
        "Imports documents: a folder of files with manifest.csv, or FHIR R4 Bundles of "
        "DocumentReference + Binary. Every refusal is reported with its reason; exit status 1 when "
        "any submission was refused. Already received documents are skipped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"]
        if not path.exists():
            raise CommandError(f"introuvable : {path}")
        actor_label = f"operator:{getpass.getuser()}"
        imported = skipped = 0
        refusals: list[str] = []
        for submission in tqdm(
            submissions(path),
            desc="Import des documents",
            unit="doc",
            disable=options["verbosity"] == 0,
            file=self.stderr,
        ):
            if submission.error:
                refusals.append(f"{submission.label} : {submission.error}")
                document_submit_refusal_record(
                    reason=submission.error,
                    source_system="import",
                    actor_label=actor_label,
                    label=submission.label,
                )
                continue
            try:
                document_submit(content=submission.content, actor_label=actor_label, **submission.arguments)
                imported += 1
            except DocumentDuplicate:
                skipped += 1
            except DocumentRefused as exc:
                refusals.append(f"{submission.label} : {exc}")
        for line in refusals:
            self.stderr.write(f"refusé — {line}")
        self.stdout.write(
            f"import terminé : {imported} importés, {skipped} déjà présents, {len(refusals)} refusés"
        )
        if refusals:
            raise CommandError(f"{len(refusals)} document(s) refusé(s)", returncode=1)
