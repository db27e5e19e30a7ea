from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from esante.documents.summary import summary_differences, summary_repair


class Command(BaseCommand):
    help = (
        "Checks the per-patient document summary (the 'Vue documentaire' counts and filter choices) "
        "against the documents: exit 0 when exact, else names the patients whose summary differs. "
        "With --repair, rebuilds those patients' summary rows from their documents. The summary is "
        "kept by database triggers; it differs only if its table was written directly or the "
        "triggers were dropped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--repair", action="store_true", help="rebuild the summary of the patients that differ"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        differing = summary_differences()
        if not differing:
            self.stdout.write("document summary exact")
            return
        shown = ", ".join(str(pk) for pk in differing[:20]) + (" …" if len(differing) > 20 else "")
        if not options["repair"]:
            raise CommandError(f"document summary differs for {len(differing)} patient(s) (ids {shown})")
        summary_repair(patient_ids=differing)
        left = summary_differences(patient_ids=differing)
        if left:
            raise CommandError(f"document summary still differs for {len(left)} patient(s) after repair")
        self.stdout.write(f"document summary repaired for {len(differing)} patient(s) (ids {shown})")
