"""The backup and restore drill: ``esante backup`` of a platform with audited activity, ``esante
restore`` into a new database and data dir, ``esante verify_audit`` on the restored copy.

Each platform runs in subprocesses through the ``esante`` command with a data dir of its own and
none of the suite's settings; on SQLite its database is in its data dir, on PostgreSQL (when the
suite runs there) a fresh database of its own on the suite's server, dropped afterwards."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

ESANTE = str(Path(sys.executable).with_name("esante"))


def _admin(url: str, *statements: str) -> None:
    import psycopg

    parts = urllib.parse.urlsplit(url)
    with psycopg.connect(urllib.parse.urlunsplit(parts._replace(path="/postgres")), autocommit=True) as admin:
        for statement in statements:
            admin.execute(statement)  # type: ignore[arg-type]


class Site:
    """One platform: a data dir, and on PostgreSQL a database named ``<suite's>_<name>``."""

    def __init__(self, root: Path, name: str) -> None:
        self.data_dir = root / name
        self.data_dir.mkdir()
        self.environment: dict[str, str] = {}  # more ESANTE_ settings of this platform
        self.database_url = ""
        suite_url = os.environ.get("DATABASE_URL", "")
        if connection.vendor == "postgresql" and suite_url:
            parts = urllib.parse.urlsplit(suite_url)
            self.database_name = f"{parts.path.lstrip('/') or 'esante'}_backup_{name}"
            self.database_url = urllib.parse.urlunsplit(parts._replace(path=f"/{self.database_name}"))
            self.drop()
            _admin(self.database_url, f'CREATE DATABASE "{self.database_name}"')

    def drop(self) -> None:
        if self.database_url:
            _admin(
                self.database_url,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "  # noqa: S608 - our own name
                f"WHERE datname = '{self.database_name}' AND pid <> pg_backend_pid()",
                f'DROP DATABASE IF EXISTS "{self.database_name}"',
            )

    def esante(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ESANTE_", "DJANGO_", "DATABASE_"))}
        env.update(ESANTE_DATA_DIR=str(self.data_dir), ESANTE_DEMO="1", PYTHONUNBUFFERED="1")
        env.update(self.environment)
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        return subprocess.run(
            [ESANTE, *args], env=env, capture_output=True, text=True, timeout=300, check=False
        )

    def ok(self, *args: str) -> str:
        result = self.esante(*args)
        assert result.returncode == 0, f"esante {' '.join(args)}: {result.stdout}\n{result.stderr}"
        return result.stdout

    def files(self, relative: str) -> dict[str, str]:
        root = self.data_dir / relative
        return {
            path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*"))
            if path.is_file()
        }


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("drill")


@pytest.fixture(scope="module")
def source(root: Path) -> Iterator[Site]:
    """A platform with audited activity: the demo data set (logins, record openings, documents,
    dispensations) and a professional added afterwards, every event signed."""
    site = Site(root, "source")
    try:
        site.ok("demo", "--no-serve", "--certificate-port", "0")
        site.ok(
            "add_professional", "--matricule", "1975010112371", "--profession", "pharmacist",
            "--last-name", "Muller", "--first-name", "Anne", "--email", "anne.muller@example.lu",
            "--mobile", "+352621000111",
        )  # fmt: skip
        site.ok("anchor_audit")
        assert site.esante("verify_audit", "-v", "0").returncode == 0
        yield site
    finally:
        site.drop()


@pytest.fixture(scope="module")
def full_backup(source: Site, root: Path) -> Path:
    directory = root / "backup-with-keys"
    output = source.ok("backup", "--to", str(directory), "--include-signing-key")
    assert "with the audit's secret keys" in output
    traced = source.ok(
        "shell",
        "--no-imports",
        "-c",
        "from esante.audit.models import AuditEvent as E; "
        "print([(e.actor_label, e.details['secret_keys'], e.details['documents']) "
        "for e in E.objects.filter(action='platform.backup')])",
    )
    documents = manifest(directory)["documents"]
    assert traced.strip() == f"[('system:cli', True, {documents})]"
    return directory


@pytest.fixture
def target(root: Path, request: pytest.FixtureRequest) -> Iterator[Site]:
    site = Site(root, request.node.name.split("[")[0].removeprefix("test_")[:40])
    try:
        yield site
    finally:
        site.drop()


def manifest(directory: Path) -> dict[str, object]:
    return dict(json.loads((directory / "manifest.json").read_text()))


def test_restored_platform_verifies_and_carries_on(source: Site, full_backup: Path, target: Site) -> None:
    written = manifest(full_backup)
    assert written["engine"] == connection.vendor
    names = {entry["path"] for entry in written["files"]}  # type: ignore[attr-defined]
    assert {"audit/heads.jsonl", "audit/signer-state.json", "audit/public-key.pem"} <= names
    assert {"audit/signing-key.pem", "audit/mac-key"} <= names
    assert int(written["documents"]) > 0  # type: ignore[call-overload]

    output = target.ok("restore", "--from", str(full_backup))
    assert "Check it with `esante verify_audit`" in output
    verified = target.esante("verify_audit", "-v", "0")
    assert verified.returncode == 0, verified.stderr
    assert f"last signed head #{written['audit_signed_sequence']}" in verified.stdout
    assert target.ok("migrate", "--check") is not None  # every migration applied
    # The documents' summary came with them, not counted twice by its triggers (pg_restore creates
    # triggers after the data; SQLite's backup copies pages).
    assert "document summary exact" in target.ok("check_document_summary")
    assert target.files("documents") == source.files("documents")
    assert target.files("audit")["heads.jsonl"] == source.files("audit")["heads.jsonl"]
    assert (target.data_dir / "audit" / "signing-key.pem").stat().st_mode & 0o077 == 0
    # The restored platform goes on writing and signing events on the same chain.
    target.ok(
        "add_professional", "--matricule", "1980020212460", "--profession", "doctor",
        "--last-name", "Schmit", "--first-name", "Paul", "--email", "paul.schmit@example.lu",
        "--mobile", "+352621000222",
    )  # fmt: skip
    target.ok("anchor_audit")
    after = target.esante("verify_audit", "-v", "0")
    assert after.returncode == 0, after.stderr
    assert int(written["audit_signed_sequence"]) < int(
        after.stdout.split("last signed head #")[1].split(";")[0]
    )  # type: ignore[call-overload]


def test_restore_refuses_a_database_that_is_not_empty(full_backup: Path, target: Site) -> None:
    target.ok("migrate", "-v", "0")
    before = (target.files("audit"), target.files("documents"))
    refused = target.esante("restore", "--from", str(full_backup))
    assert refused.returncode == 1
    assert "restore REFUSED: the database is not empty" in refused.stderr
    assert (target.files("audit"), target.files("documents")) == before  # no document, head or key
    assert not (target.data_dir / "audit" / "heads.jsonl").exists()


def test_restore_refuses_a_damaged_backup_and_writes_nothing(
    full_backup: Path, root: Path, target: Site
) -> None:
    damaged = root / "damaged"
    shutil.copytree(full_backup, damaged)
    document = next(path for path in sorted((damaged / "documents").rglob("*")) if path.is_file())
    document.write_bytes(document.read_bytes() + b"x")
    refused = target.esante("restore", "--from", str(damaged))
    assert refused.returncode == 1
    assert "does not match its SHA-256" in refused.stderr
    assert document.relative_to(damaged).as_posix() in refused.stderr
    assert target.files("documents") == {} and not (target.data_dir / "audit" / "heads.jsonl").exists()
    shown = target.esante(
        "shell",
        "--no-imports",
        "-c",
        "from django.db import connection; print(connection.introspection.table_names())",
    )
    assert shown.stdout.strip() == "[]"
    incomplete = root / "incomplete"
    shutil.copytree(full_backup, incomplete)
    (incomplete / "manifest.json").unlink()
    refused = target.esante("restore", "--from", str(incomplete))
    assert refused.returncode == 1 and "holds no manifest.json" in refused.stderr


def test_a_backup_without_secret_keys_needs_the_mac_key_put_back(
    source: Site, root: Path, target: Site
) -> None:
    directory = root / "backup-without-keys"
    source.ok("anchor_audit")  # the earlier backup's own event, signed
    source.ok("backup", "--to", str(directory))
    names = {entry["path"] for entry in manifest(directory)["files"]}  # type: ignore[attr-defined]
    assert "audit/public-key.pem" in names
    assert not {"audit/signing-key.pem", "audit/mac-key"} & names
    assert (
        not (directory / "audit" / "signing-key.pem").exists()
        and not (directory / "audit" / "mac-key").exists()
    )
    target.ok("restore", "--from", str(directory))
    assert target.esante("verify_audit", "-v", "0").returncode == 5  # no MAC key: nothing vouched for
    # The operator puts the MAC key back from its own safe; the public key verifies the heads.
    shutil.copy2(source.data_dir / "audit" / "mac-key", target.data_dir / "audit" / "mac-key")
    verified = target.esante("verify_audit", "-v", "0")
    assert verified.returncode == 0, verified.stderr


def test_backup_refuses_a_directory_that_is_not_empty(source: Site, root: Path) -> None:
    directory = root / "occupied"
    directory.mkdir()
    (directory / "old.txt").write_text("earlier backup")
    refused = source.esante("backup", "--to", str(directory))
    assert refused.returncode == 1 and "is not empty" in refused.stderr
    assert sorted(p.name for p in directory.iterdir()) == ["old.txt"]
