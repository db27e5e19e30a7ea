"""The journal and the public log: a line covered by a signed checkpoint says so, and its page
gives the patient — and only the patient — what the standalone verifier needs (the leaf index,
the salt, the event's exact text); the verifier, a separate process with only the public URL and
the key, then confirms the line is in the log everybody sees."""

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from esante.audit.catalogue import AuditAction
from esante.audit.keys import verification_public_key
from esante.audit.models import AuditEvent
from esante.audit.services import audit_record
from esante.tlog import note
from esante.tlog.sequencer import sequence_pending
from tests.access.factories import make_patient, make_professional

from .conftest import active_account, events_after, last_sequence, logged_in_patient

ROOT = Path(__file__).resolve().parents[2]


def test_a_logged_line_is_verified_by_the_standalone_verifier(journal_url: str, tmp_path: Path) -> None:
    account = active_account()
    doctor = make_professional("doctor", last_name="Weber")
    opened = audit_record(action=AuditAction.RECORD_OPEN, actor=doctor.user, patient=account.patient)
    browser = logged_in_patient(account)
    # Not yet in a signed checkpoint: the page says so, no salt shown.
    page = html.unescape(browser.get(f"/patient/journal/entree/{opened.sequence}/").content.decode())
    assert "pas encore couverte" in page
    assert sequence_pending() > 0
    journal = html.unescape(browser.get("/patient/journal/").content.decode())
    assert re.search(r"vérifié dans le journal public, point de contrôle \d+", journal)
    page = html.unescape(browser.get(f"/patient/journal/entree/{opened.sequence}/").content.decode())
    index = re.search(r"--index (\d+)", page)[1]  # type: ignore[index]
    salt = re.search(r"--salt ([0-9a-f]{64})", page)[1]  # type: ignore[index]
    event = browser.get(f"/patient/journal/entree/{opened.sequence}/evenement.json").content
    assert event == AuditEvent.objects.get(pk=opened.pk).canonical.encode("utf-8")
    (tmp_path / "event.json").write_bytes(event)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "ESANTE", "DATABASE"))}
    key = note.verifier_key(settings.TLOG_ORIGIN, verification_public_key())
    command = [sys.executable, "-m", "esante.tlog.verify", "--url", journal_url, "--key", key]
    command += ["--state", str(tmp_path / "seen.json"), "--index", index, "--salt", salt]
    verified = subprocess.run(
        [*command, "--event", str(tmp_path / "event.json")],
        env={**env, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"The journal entry {index} is in the log" in verified.stdout
    # A changed event is not: the verifier says so.
    (tmp_path / "event.json").write_bytes(event.replace(b"record.open", b"record.view"))
    refused = subprocess.run(
        [*command, "--event", str(tmp_path / "event.json")],
        env={**env, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1 and "NOT in the log" in refused.stdout


@pytest.mark.django_db
def test_another_patients_line_and_its_salt_are_not_found() -> None:
    account = active_account()
    other = make_patient(birth_name="Wolf")
    theirs = audit_record(action=AuditAction.RECORD_OPEN, actor=make_professional().user, patient=other)
    browser = logged_in_patient(account)
    for url in (
        f"/patient/journal/entree/{theirs.sequence}/",
        f"/patient/journal/entree/{theirs.sequence}/evenement.json",
    ):
        start = last_sequence()
        response = browser.get(url)
        assert response.status_code == 404
        assert b"Wolf" not in response.content and theirs.hash.encode() not in response.content
        assert events_after(start) == [("espace.not_found", "refused")]


@pytest.mark.django_db
def test_a_line_says_when_its_checkpoint_is_cosigned_by_the_witness() -> None:
    from esante.tlog.models import LogCheckpoint

    account = active_account()
    doctor = make_professional("doctor", last_name="Weber")
    audit_record(action=AuditAction.RECORD_OPEN, actor=doctor.user, patient=account.patient)
    browser = logged_in_patient(account)
    sequence_pending()
    latest = LogCheckpoint.objects.order_by("-size").first()
    assert latest is not None
    journal = html.unescape(browser.get("/patient/journal/").content.decode())
    assert f"vérifié dans le journal public, point de contrôle {latest.size}</a>" in journal
    assert "cosigné par le témoin" not in journal
    # The witness's cosignature kept with the checkpoint (as ``tlog.witnessing`` keeps a verified one).
    LogCheckpoint.objects.filter(pk=latest.pk).update(cosignature="— witness.example AAAA\n")
    journal = html.unescape(browser.get("/patient/journal/").content.decode())
    assert f"point de contrôle {latest.size}, cosigné par le témoin</a>" in journal
    # A newer checkpoint the witness has not cosigned yet: the lines it covers say only that.
    audit_record(action=AuditAction.RECORD_VIEW, actor=doctor.user, patient=account.patient)
    sequence_pending()
    newer = LogCheckpoint.objects.order_by("-size").first()
    assert newer is not None and newer.size > latest.size
    journal = html.unescape(browser.get("/patient/journal/").content.decode())
    assert "cosigné par le témoin" not in journal
    assert f"point de contrôle {newer.size}</a>" in journal
    # In English too.
    LogCheckpoint.objects.filter(pk=newer.pk).update(cosignature="— witness.example BBBB\n")
    english = html.unescape(browser.get("/patient/journal/", HTTP_ACCEPT_LANGUAGE="en").content.decode())
    assert f"checkpoint {newer.size}, cosigned by the witness" in english
