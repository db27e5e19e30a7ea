"""``esante backup --to DIR``: a consistent copy of the database, the documents and the audit
heads, with a manifest of SHA-256 sums (``core.backup``)."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from esante.core.backup import BackupError, backup_create, backup_estimate


class Command(BaseCommand):
    help = (
        "Backs up the database (SQLite online backup, or pg_dump -Fc), the document files, the audit "
        "heads file, the signer's state and the audit public key into a new directory, with a manifest "
        "(SHA-256 of every file). The audit's secret keys only with --include-signing-key."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--to", type=Path, required=True, metavar="DIR", help="a new or empty directory")
        parser.add_argument(
            "--include-signing-key",
            action="store_true",
            help="also copy the audit signing key and the audit MAC key (keep such a backup in a safe: "
            "whoever holds it with the database can forge the trail)",
        )

        parser.add_argument(
            "--without-documents",
            action="store_true",
            help="copy no document file: for an object store with its own versioning and replication "
            "(the restore then runs on a storage that holds them)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            with tqdm(
                total=backup_estimate(include_documents=not options["without_documents"]),
                unit="B",
                unit_scale=True,
                disable=options["verbosity"] == 0,
                file=self.stderr,
            ) as bar:
                summary = backup_create(
                    directory=options["to"],
                    actor_label="system:cli",
                    include_secret_keys=options["include_signing_key"],
                    include_documents=not options["without_documents"],
                    progress=bar.update,
                )
        except BackupError as exc:
            raise CommandError(f"backup NOT made: {exc}") from exc
        documents = (
            f"{summary.documents} document files"
            if not options["without_documents"]
            else "no document file (--without-documents)"
        )
        keys = "with the audit's secret keys" if summary.secret_keys else "without the audit's secret keys"
        self.stdout.write(
            f"backup written to {summary.directory}: {summary.engine} database, {documents}, "
            f"audit heads signed up to #{summary.signed_sequence}, {keys}; "
            f"{summary.files} files, {summary.bytes} bytes (manifest.json)"
        )
