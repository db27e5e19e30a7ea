"""Backup and restore of one platform (``esante backup --to DIR``, ``esante restore --from DIR``).

A backup directory holds:

- ``database.sqlite3`` (SQLite's online backup API: one consistent snapshot while the platform
  runs) or ``database.pgdump`` (``pg_dump -Fc``: one consistent snapshot of PostgreSQL);
- ``documents/``: the document files of the storage (``STORAGES["default"]``): the files under
  the filesystem storage's directory, or every object of the S3 bucket (``ESANTE_STORAGE=s3``),
  streamed, under the same names — a backup of one restores into the other;
- ``audit/``: the heads file, the signer's state and the public key; the audit's secret keys (the
  signing key and the MAC key) only with ``--include-signing-key`` — otherwise keep them in their
  own safe and put them back in place before restoring;
- ``manifest.json``, written last: the SHA-256 and size of every other file. A directory without
  it is an incomplete backup; restore checks every file against it before writing anything.

Order, so that the copy is consistent: the heads file and the signer's state first (under the
heads' shared lock: no head is signed meanwhile), then the database (its chain reaches at least
the last head copied: at worst a few events after it are unsigned, and the restored signer signs
them), then the documents (written before their rows commit and never deleted, so every row of
the snapshot finds its file).

The job queue is not backed up: jobs lost with it are done again by the follow-up sweep
(``esante dispensation_follow_up``).
"""

import datetime
import hashlib
import json
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.db import connection, connections

from esante.audit.catalogue import AuditAction
from esante.audit.heads import heads_copy_files, heads_read_lock, last_head
from esante.audit.services import audit_record

from .storage import S3DocumentStorage

FORMAT = "esante-backup/1"
MANIFEST = "manifest.json"
SQLITE_DUMP = "database.sqlite3"
POSTGRES_DUMP = "database.pgdump"
CHUNK = 1024 * 1024

Progress = Callable[[int], object]


class BackupError(Exception):
    """The backup or the restore cannot be made; nothing was restored."""


@dataclass(frozen=True)
class BackupSummary:
    directory: Path
    engine: str
    documents: int
    files: int
    bytes: int
    signed_sequence: int
    secret_keys: bool


def _engine() -> str:
    vendor = connection.vendor
    if vendor not in ("sqlite", "postgresql"):
        raise BackupError(f"no backup for the {vendor} database engine (SQLite or PostgreSQL)")
    return vendor


def _documents_storage() -> Storage:
    storage = storages["default"]
    if not isinstance(storage, FileSystemStorage | S3DocumentStorage):
        raise BackupError(
            f"the documents are in {type(storage).__name__}: back them up with that store's own tools"
        )
    return storage


def _documents(storage: Storage) -> Iterator[tuple[str, int]]:
    """(name, size) of every document file of the storage, in name order for the filesystem."""
    if isinstance(storage, S3DocumentStorage):
        yield from storage.object_sizes()
        return
    root = Path(cast(FileSystemStorage, storage).location)
    for path in _files_under(root):
        yield path.relative_to(root).as_posix(), path.stat().st_size


def _document_stream(storage: Storage, name: str) -> IO[bytes]:
    if isinstance(storage, S3DocumentStorage):
        return storage.open_stream(name).stream
    return (Path(cast(FileSystemStorage, storage).location) / name).open("rb")


def _files_under(root: Path) -> Iterator[Path]:
    if root.is_dir():
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                yield path


def _copy(
    source: Path | IO[bytes], target: Path, *, progress: Progress | None = None, secret: bool = False
) -> str:
    """Copies ``source`` (a path, or a stream it closes) to ``target`` (fsync'ed; mode 0600 when
    ``secret``); its SHA-256."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    digest = hashlib.sha256()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if secret else 0o640)
    src = source.open("rb") if isinstance(source, Path) else source
    with src, os.fdopen(fd, "wb") as dst:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            dst.write(chunk)
            if progress is not None:
                progress(len(chunk))
        dst.flush()
        os.fsync(dst.fileno())
    return digest.hexdigest()


def _sha256(path: Path, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            if progress is not None:
                progress(len(chunk))
    return digest.hexdigest()


def _postgres_arguments() -> tuple[list[str], dict[str, str]]:
    """pg_dump / pg_restore connection options from the settings; the password in the child's
    environment (PGPASSWORD), never on its command line."""
    db = connection.settings_dict
    arguments = ["--dbname", str(db["NAME"])]
    if db.get("HOST"):
        arguments += ["--host", str(db["HOST"])]
    if db.get("PORT"):
        arguments += ["--port", str(db["PORT"])]
    if db.get("USER"):
        arguments += ["--username", str(db["USER"])]
    env = dict(os.environ)
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])
    return arguments, env


def _run(command: list[str], env: dict[str, str]) -> None:
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    except FileNotFoundError as exc:
        raise BackupError(f"{command[0]} is not installed (Debian: postgresql-client)") from exc
    if result.returncode != 0:
        raise BackupError(f"{command[0]} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")


def _dump_database(engine: str, directory: Path) -> Path:
    if engine == "sqlite":
        target = directory / SQLITE_DUMP
        source_path = Path(connection.settings_dict["NAME"])
        source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True, timeout=60)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            copy = sqlite3.connect(target)
            try:
                # In one step: a snapshot of one moment (a stepwise copy restarts at each write).
                source.backup(copy, pages=-1)
            finally:
                copy.close()
        finally:
            source.close()
        return target
    target = directory / POSTGRES_DUMP
    arguments, env = _postgres_arguments()
    _run(["pg_dump", "--format=custom", "--no-owner", "--no-acl", "--file", str(target), *arguments], env)
    target.chmod(0o600)
    return target


def backup_create(
    *,
    directory: Path,
    actor_label: str,
    include_secret_keys: bool = False,
    include_documents: bool = True,
    progress: Progress | None = None,
) -> BackupSummary:
    """Writes a backup of the platform into ``directory`` (missing or empty; made mode 0700),
    then traces it (``platform.backup``, by ``actor_label``).

    ``include_documents=False`` copies no document file (the bucket is versioned and replicated
    on its own); such a backup restores onto a storage that already holds them. ``progress``
    receives the bytes copied as they are. Raises BackupError (the directory then
    holds no manifest: it is no backup) when the directory is not empty, the database engine or
    the document storage is not one it can back up, or ``pg_dump`` fails."""
    engine = _engine()
    if directory.exists() and any(directory.iterdir()):
        raise BackupError(f"{directory} is not empty: a backup goes into a new directory")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    storage = _documents_storage()
    digests: dict[str, str] = {}

    def keep(relative: str, source: Path, *, secret: bool = False) -> None:
        digests[relative] = _copy(source, directory / relative, progress=progress, secret=secret)

    with heads_read_lock():
        heads_file: Path = settings.AUDIT_HEADS_FILE
        if heads_file.exists():
            keep("audit/heads.jsonl", heads_file)
        if settings.AUDIT_SIGNER_STATE_FILE.exists():
            keep("audit/signer-state.json", settings.AUDIT_SIGNER_STATE_FILE)
        signed = last_head(directory / "audit/heads.jsonl")
    public_key: Path = settings.AUDIT_PUBLIC_KEY_FILE
    if public_key.exists():
        keep("audit/public-key.pem", public_key)
    elif heads_file.exists():
        raise BackupError(f"the audit public key {public_key} is missing: the heads could not be verified")
    if include_secret_keys:
        for name, path in (("audit/signing-key.pem", settings.AUDIT_SIGNING_KEY_FILE),
                           ("audit/mac-key", settings.AUDIT_MAC_KEY_FILE)):  # fmt: skip
            if path.exists():
                keep(name, path, secret=True)

    dump = _dump_database(engine, directory)
    digests[dump.name] = _sha256(dump, progress)

    documents = 0
    for name, _size in _documents(storage) if include_documents else ():
        relative = f"documents/{name}"
        digests[relative] = _copy(_document_stream(storage, name), directory / relative, progress=progress)
        documents += 1

    files = [
        {"path": name, "sha256": digest, "bytes": (directory / name).stat().st_size}
        for name, digest in sorted(digests.items())
    ]
    manifest = {
        "format": FORMAT,
        "created_at": datetime.datetime.now(datetime.UTC).isoformat(),
        "engine": engine,
        "database": dump.name,
        "documents": documents,
        "audit_signed_sequence": signed.sequence if signed is not None else 0,
        "secret_keys": include_secret_keys,
        "documents_included": include_documents,
        "files": files,
    }
    fd = os.open(directory / MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    # Traced once made (so the event is not in the copy itself): who holds the copy holds every record.
    audit_record(
        action=AuditAction.BACKUP_CREATE,
        actor_label=actor_label,
        details={
            "directory": str(directory.resolve())[:500],
            "engine": engine,
            "documents": documents,
            "signed_sequence": manifest["audit_signed_sequence"],
            "secret_keys": include_secret_keys,
            "documents_included": include_documents,
        },
    )
    return BackupSummary(
        directory=directory,
        engine=engine,
        documents=documents,
        files=len(files),
        bytes=sum(int(f["bytes"]) for f in files),  # type: ignore[call-overload]
        signed_sequence=manifest["audit_signed_sequence"],  # type: ignore[arg-type]
        secret_keys=include_secret_keys,
    )


def read_manifest(directory: Path, progress: Progress | None = None) -> dict[str, Any]:
    """The backup's manifest, every file checked against it. Raises BackupError naming the first
    file missing, of another size, or whose SHA-256 differs, and for a file the manifest names
    outside the directory."""
    path = directory / MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{directory} holds no {MANIFEST}: it is not a complete backup") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{path} is unreadable: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path} is not a backup of format {FORMAT}")
    root = directory.resolve()
    for entry in manifest["files"]:
        file = (directory / entry["path"]).resolve()
        if not file.is_relative_to(root):
            raise BackupError(f"the manifest names a file outside the backup: {entry['path']}")
        if not file.is_file():
            raise BackupError(f"the backup is damaged: {entry['path']} is missing")
        if file.stat().st_size != entry["bytes"] or _sha256(file, progress) != entry["sha256"]:
            raise BackupError(f"the backup is damaged: {entry['path']} does not match its SHA-256")
    return manifest


def _database_tables() -> list[str]:
    with connection.cursor() as cursor:
        return list(connection.introspection.table_names(cursor))


def _restore_targets(manifest: dict[str, Any]) -> list[tuple[str, Path, bool]]:
    """(file in the backup, where it goes, secret) for every file but the database dump and the
    documents."""
    places = {
        "audit/heads.jsonl": (settings.AUDIT_HEADS_FILE, False),
        "audit/signer-state.json": (settings.AUDIT_SIGNER_STATE_FILE, False),
        "audit/public-key.pem": (settings.AUDIT_PUBLIC_KEY_FILE, False),
        "audit/signing-key.pem": (settings.AUDIT_SIGNING_KEY_FILE, True),
        "audit/mac-key": (settings.AUDIT_MAC_KEY_FILE, True),
    }
    targets: list[tuple[str, Path, bool]] = []
    for entry in manifest["files"]:
        name = entry["path"]
        if name == manifest["database"]:
            continue
        if name.startswith("documents/"):
            continue
        if name in places:
            targets.append((name, *places[name]))
        else:
            raise BackupError(f"the manifest names a file restore does not know: {name}")
    return targets


def backup_restore(*, directory: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Restores the backup in ``directory`` into this platform's (empty) database and data dir.

    Checks everything before writing anything: every file against the manifest, the database
    engine (the backup's), an empty database (no table at all: restore before ``esante
    migrate``), no document, heads file, signer state or key already in place. Raises
    BackupError otherwise, having written nothing. Returns the manifest."""
    manifest = read_manifest(directory, progress)
    engine = _engine()
    if manifest["engine"] != engine:
        raise BackupError(f"the backup is of a {manifest['engine']} database; this platform's is {engine}")
    tables = _database_tables()
    if tables:
        raise BackupError(
            f"the database is not empty ({len(tables)} tables): restore only into a new, empty database"
        )
    targets = _restore_targets(manifest)
    storage = _documents_storage()
    if manifest.get("documents_included", True) and any(True for _ in _documents(storage)):
        raise BackupError("the document storage is not empty: restore into a new data dir or bucket")
    present = [str(target) for _, target, _ in targets if target.exists()]
    if present:
        raise BackupError(f"already in place, not overwritten: {', '.join(present[:5])}")

    dump = directory / manifest["database"]
    if engine == "sqlite":
        connections.close_all()
        source = sqlite3.connect(f"file:{dump}?mode=ro", uri=True)
        target = sqlite3.connect(connection.settings_dict["NAME"])
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
    else:
        arguments, env = _postgres_arguments()
        connections.close_all()
        _run(
            ["pg_restore", "--exit-on-error", "--single-transaction", "--no-owner", "--no-acl",
             *arguments, str(dump)],
            env,
        )  # fmt: skip
    if progress is not None:
        progress(dump.stat().st_size)

    sha = {entry["path"]: entry["sha256"] for entry in manifest["files"]}
    for entry in manifest["files"]:
        if entry["path"].startswith("documents/"):
            _restore_document(storage, directory, entry["path"], sha[entry["path"]], progress)
    for name, target_path, secret in targets:
        if _copy(directory / name, target_path, progress=progress, secret=secret) != sha[name]:
            raise BackupError(f"{name} changed while it was restored")
    heads = directory / "audit/heads.jsonl"
    if heads.exists():
        for copy in heads_copy_files():
            if not copy.exists():
                _copy(heads, copy)
    return manifest


def _restore_document(
    storage: Storage, directory: Path, relative: str, sha256: str, progress: Progress | None
) -> None:
    name = relative.removeprefix("documents/")
    if isinstance(storage, FileSystemStorage):
        if _copy(directory / relative, Path(storage.location) / name, progress=progress) != sha256:
            raise BackupError(f"{relative} changed while it was restored")
        return
    # The object store computes the object's SHA-256 and S3DocumentStorage checks it is ours.
    if _sha256(directory / relative) != sha256:
        raise BackupError(f"{relative} changed while it was restored")
    with (directory / relative).open("rb") as fh:
        if storage.save(name, File(fh, name=name)) != name:
            raise BackupError(f"{relative} could not be restored under its own name")
    if progress is not None:
        progress((directory / relative).stat().st_size)


def backup_size(directory: Path) -> int:
    """Bytes of the files in a backup directory: for a progress bar."""
    return sum(path.stat().st_size for path in _files_under(directory))


def backup_estimate(*, include_documents: bool = True) -> int:
    """Bytes a backup is about to copy (the PostgreSQL dump not counted): for a progress bar."""
    total = sum(size for _, size in _documents(_documents_storage())) if include_documents else 0
    for path in (settings.AUDIT_HEADS_FILE, settings.AUDIT_SIGNER_STATE_FILE, settings.AUDIT_PUBLIC_KEY_FILE):
        if path.exists():
            total += path.stat().st_size
    if connection.vendor == "sqlite":
        total += Path(connection.settings_dict["NAME"]).stat().st_size
    return total


__all__ = [
    "BackupError",
    "BackupSummary",
    "backup_create",
    "backup_estimate",
    "backup_restore",
    "backup_size",
    "read_manifest",
]
