"""The audit trail's keys (issue 10 review): ``verify_audit`` reads only a public key and never
creates one; every event carries an HMAC keyed outside the database, written in its own insert."""

import hashlib
import hmac
import io
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from esante.audit.anchoring import audit_anchor
from esante.audit.catalogue import AuditAction
from esante.audit.keys import MAC_KEY_BYTES, forget_mac_keys
from esante.audit.models import AuditEvent
from esante.audit.services import audit_record
from tests.audit.settle import settle

NO_KEY = 5


@pytest.fixture(autouse=True)
def own_keys(settings: Any, tmp_path: Path) -> Any:
    keys = tmp_path / "keys"
    settings.AUDIT_SIGNING_KEY_FILE = keys / "signing-key.pem"
    settings.AUDIT_PUBLIC_KEY_FILE = keys / "signing-key.pub.pem"
    settings.AUDIT_MAC_KEY_FILE = keys / "mac-key"
    settings.AUDIT_SIGNER_STATE_FILE = keys / "signer-state.json"
    settings.AUDIT_HEADS_FILE = tmp_path / "heads.jsonl"
    settings.AUDIT_HEADS_COPY_FILES = []
    settings.AUDIT_WITNESS_URL = ""
    yield settings
    forget_mac_keys()


def verify() -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("verify_audit", verbosity=0, stdout=out)
    except CommandError as exc:
        return exc.returncode, str(exc)
    return 0, out.getvalue()


@pytest.mark.django_db
def test_each_event_carries_an_hmac_of_its_hash_with_the_key_off_the_database(settings: Any) -> None:
    (event,) = settle([audit_record(action=AuditAction.RECORD_OPEN, actor_label="tester")])
    key_file: Path = settings.AUDIT_MAC_KEY_FILE
    key = key_file.read_bytes()
    assert len(key) == MAC_KEY_BYTES and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    stored = AuditEvent.objects.values_list("mac", flat=True).get(pk=event.pk)
    assert stored == hmac.new(key, event.hash.encode(), hashlib.sha256).hexdigest()


@pytest.mark.django_db
def test_the_public_key_is_written_with_the_signing_key(settings: Any) -> None:
    audit_record(action=AuditAction.RECORD_OPEN, actor_label="tester")
    settle()
    audit_anchor()
    private: Path = settings.AUDIT_SIGNING_KEY_FILE
    public: Path = settings.AUDIT_PUBLIC_KEY_FILE
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in public.read_text()


@pytest.mark.django_db
def test_verify_audit_reads_the_public_key_and_never_creates_a_key(settings: Any, tmp_path: Path) -> None:
    """Issue 10 review: verify_audit run where the key is not (a backup host) created one."""
    audit_record(action=AuditAction.RECORD_OPEN, actor_label="tester")
    settle()
    audit_anchor()
    private: Path = settings.AUDIT_SIGNING_KEY_FILE
    public: Path = settings.AUDIT_PUBLIC_KEY_FILE
    elsewhere = tmp_path / "backup-host" / "audit.pub.pem"
    elsewhere.parent.mkdir()
    shutil.copy(public, elsewhere)
    private.unlink()
    assert verify()[0] == 0  # the public key file is enough
    public.unlink()
    status, message = verify()
    assert status == NO_KEY and "NOT VERIFIED: no key to verify the signed heads with" in message
    assert not private.exists() and not public.exists()  # nothing created
    settings.AUDIT_PUBLIC_KEY_FILE = elsewhere  # ESANTE_AUDIT_PUBLIC_KEY_FILE
    assert verify()[0] == 0
    assert not private.exists()


@pytest.mark.django_db
def test_verify_audit_without_the_mac_key_says_so_and_creates_none(settings: Any, tmp_path: Path) -> None:
    audit_record(action=AuditAction.RECORD_OPEN, actor_label="tester")
    settle()
    audit_anchor()
    settings.AUDIT_MAC_KEY_FILE = tmp_path / "not-here" / "mac-key"
    status, message = verify()
    assert status == NO_KEY and "no audit MAC key at" in message and "MACs cannot be checked" in message
    assert not settings.AUDIT_MAC_KEY_FILE.exists()


@pytest.mark.django_db
def test_an_empty_trail_without_any_key_verifies_as_empty() -> None:
    assert verify() == (0, "audit trail empty: nothing to verify\n")
