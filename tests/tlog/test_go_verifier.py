"""An independent verifier nobody here wrote: Go's golang.org/x/mod/sumdb/tlog and sumdb/note
(Debian golang-go and golang-golang-x-mod-dev, built offline in GOPATH mode) check, over HTTP
against the platform's real /journal/ endpoints, the checkpoints' signatures, the tiles against
the signed root, an entry's inclusion and two checkpoints' consistency (tests/tlog/go/main.go).
Then the same program must refuse another key, a forked checkpoint and a tampered tile."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.db import transaction

from esante.audit.catalogue import AuditAction
from esante.audit.keys import load_or_create_signing_key, verification_public_key
from esante.audit.services import audit_record
from esante.tlog import note
from esante.tlog.models import LogTile
from esante.tlog.selectors import latest_checkpoint
from esante.tlog.sequencer import sequence_batch, sequence_pending

GO_SOURCE = Path(__file__).parent / "go"
GO_PATH = "/usr/share/gocode"  # where golang-golang-x-mod-dev installs golang.org/x/mod

pytestmark = pytest.mark.skipif(shutil.which("go") is None, reason="Go is not installed (Debian golang-go)")


def _go_env(tmp: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "GOPATH": GO_PATH,
        "GO111MODULE": "off",  # the Debian package is a GOPATH tree; nothing is downloaded
        "GOFLAGS": "",
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
    }
    if "HOME" not in os.environ:
        env["GOCACHE"] = str(tmp / "gocache")
    return env


@pytest.fixture(scope="module")
def tlogcheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("go")
    assert (Path(GO_PATH) / "src/golang.org/x/mod/sumdb/tlog").is_dir(), (
        "golang.org/x/mod is missing: install Debian's golang-golang-x-mod-dev"
    )
    binary = out / "tlogcheck"
    built = subprocess.run(
        ["go", "build", "-o", str(binary), "."],
        cwd=GO_SOURCE,
        env=_go_env(out),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return binary


def record(n: int) -> None:
    with transaction.atomic():
        for i in range(n):
            audit_record(action=AuditAction.LOGOUT, actor_label="tester", details={"n": i})


def vkey() -> str:
    return note.verifier_key(settings.TLOG_ORIGIN, verification_public_key())


def check(
    binary: Path, url: str, old: Path, index: int, key: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(binary),
            "-url",
            url,
            "-vkey",
            key or vkey(),
            "-origin",
            settings.TLOG_ORIGIN,
            "-old",
            str(old),
            "-index",
            str(index),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _grow(tmp_path: Path, size: int, batch: int) -> Path:
    """A log of 5 events (its checkpoint kept as the "older" one), then grown to ``size``."""
    record(5)
    sequence_batch()
    checkpoint = latest_checkpoint()
    assert checkpoint is not None
    old = tmp_path / "old-checkpoint"
    old.write_text(checkpoint.note, encoding="utf-8")
    record(size - 5)
    sequence_pending(limit=batch)
    return old


@pytest.fixture
def grown_log(journal_url: str, tmp_path: Path) -> Path:
    """600 leaves in batches of 100: two full level-0 tiles, a partial one, a level-1 tile."""
    return _grow(tmp_path, 600, 100)


def _verified(binary: Path, url: str, old: Path, size: int, indexes: tuple[int, ...]) -> None:
    for index in indexes:
        result = check(binary, url, old, index)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.count("ok:") == 6
        assert f"tree size {size}" in result.stdout
        assert f"ok: inclusion of entry {index} in tree {size}" in result.stdout
        assert f"ok: tree {size} is consistent with tree 5" in result.stdout


def test_go_verifies_checkpoints_tiles_inclusion_and_consistency(
    tlogcheck: Path, journal_url: str, grown_log: Path
) -> None:
    _verified(tlogcheck, journal_url, grown_log, 600, (0, 4, 255, 256, 300, 511, 512, 599))


@pytest.mark.slow
def test_go_verifies_a_tree_with_three_tile_levels(tlogcheck: Path, journal_url: str, tmp_path: Path) -> None:
    """70,000 leaves: full tiles at levels 0 and 1, a partial one at level 2 (about a minute)."""
    old = _grow(tmp_path, 70_000, 7_000)
    _verified(tlogcheck, journal_url, old, 70_000, (3, 65_535, 65_536, 69_999))


def test_go_refuses_another_key(tlogcheck: Path, journal_url: str, grown_log: Path) -> None:
    other = note.verifier_key(settings.TLOG_ORIGIN, Ed25519PrivateKey.generate().public_key())
    result = check(tlogcheck, journal_url, grown_log, 3, key=other)
    assert result.returncode == 1 and "FAIL: latest checkpoint" in result.stdout


def test_go_refuses_a_forked_tree(tlogcheck: Path, journal_url: str, grown_log: Path, tmp_path: Path) -> None:
    """A split view: another tree of size 5, signed with the platform's own key, is not consistent
    with the published tree."""
    fork = tmp_path / "fork"
    fork.write_text(note.sign_checkpoint(settings.TLOG_ORIGIN, 5, b"\x07" * 32, load_or_create_signing_key()))
    result = check(tlogcheck, journal_url, fork, 3)
    assert result.returncode == 1 and "FAIL: consistency proof" in result.stdout


def test_go_refuses_a_tampered_tile(tlogcheck: Path, journal_url: str, grown_log: Path) -> None:
    tile = LogTile.objects.get(level=0, index=1)
    data = bytearray(bytes(tile.hashes))
    data[44 * 32] ^= 1  # leaf 300's hash
    LogTile.objects.filter(pk=tile.pk).update(hashes=bytes(data))
    result = check(tlogcheck, journal_url, grown_log, 300)
    assert result.returncode == 1
    assert "FAIL: tile holding leaf 300: its hash is not in the signed tree" in result.stdout
