"""``esante restore --from DIR``: a backup of ``esante backup`` into an empty database and data
dir; every file checked against the manifest first (``core.backup``)."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from esante.core.backup import BackupError, backup_restore, backup_size


class Command(BaseCommand):
    help = (
        "Restores a backup made by `esante backup` into this platform's database (empty: no table, "
        "before `esante migrate`) and data dir (no document, heads file or key in place). Checks "
        "every file's SHA-256 first; writes nothing when anything is amiss. Then run `esante "
        "verify_audit`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="source", type=Path, required=True, metavar="DIR")

    def handle(self, *args: Any, **options: Any) -> None:
        source: Path = options["source"]
        try:
            with tqdm(
                total=2 * backup_size(source) if source.is_dir() else None,
                unit="B",
                unit_scale=True,
                disable=options["verbosity"] == 0,
                file=self.stderr,
            ) as bar:
                manifest = backup_restore(directory=source, progress=bar.update)
        except BackupError as exc:
            raise CommandError(f"restore REFUSED: {exc}") from exc
        keys = (
            ""
            if manifest["secret_keys"]
            else (
                "; the backup holds no secret audit key: put the MAC key (and the signing key, on the "
                "signing host) in place before the platform writes or signs"
            )
        )
        documents = (
            f"{manifest['documents']} document files"
            if manifest.get("documents_included", True)
            else "no document file (a backup --without-documents: the storage's own are used)"
        )
        self.stdout.write(
            f"restored from {source}: {manifest['engine']} database, {documents}, "
            f"audit heads signed up to #{manifest['audit_signed_sequence']}{keys}. "
            "Check it with `esante verify_audit`."
        )
