"""Access notifications through real peers: a local SMTP server (aiosmtpd) and a local HTTP SMS
gateway, both started by the tests; the emergency alert after the grant's real commit."""

import io
import json
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from threading import Thread
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.core import mail
from django.core.management import call_command

from esante.access.services import access_grant_emergency
from esante.audit.catalogue import AuditAction, AuditOutcome
from esante.audit.models import AuditEvent
from esante.audit.services import audit_record
from esante.espace.models import PatientAccount
from esante.espace.services import notifications_set
from tests.access.factories import make_professional

from .conftest import active_account


class Inbox:
    def __init__(self) -> None:
        self.received: list[tuple[list[str], str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((list(envelope.rcpt_tos), envelope.content.decode("utf-8", errors="replace")))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp(settings: Any) -> Iterator[Inbox]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = "127.0.0.1", controller.port, False
    try:
        yield inbox
    finally:
        controller.stop()


class _Gateway(BaseHTTPRequestHandler):
    received: list[dict[str, str]] = []
    status = 202

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def gateway(settings: Any) -> Iterator[type[_Gateway]]:
    _Gateway.received, _Gateway.status = [], 202
    server = HTTPServer(("127.0.0.1", 0), _Gateway)
    Thread(target=server.serve_forever, daemon=True).start()
    settings.ESANTE_SMS_BACKEND = "esante.accounts.delivery.HttpSmsBackend"
    settings.ESANTE_SMS_GATEWAY_URL = f"http://127.0.0.1:{server.server_port}/sms"
    settings.ESANTE_PUBLIC_URL = "https://edocuments.esante.lu"
    try:
        yield _Gateway
    finally:
        server.shutdown()


@pytest.fixture
def account(db: Any) -> PatientAccount:
    """Activated before the SMTP server or the gateway replaces the test outbox."""
    return active_account()


def _digests() -> str:
    out = io.StringIO()
    call_command("send_access_digests", stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_the_daily_digest_counts_new_accesses_by_email_with_nothing_clinical(
    account: PatientAccount, smtp: Inbox
) -> None:
    notifications_set(account=account, channel="email", client_address=None)
    doctor = make_professional("doctor", last_name="Weber")
    # Earlier than the choice: not reported. After it: two accesses and the patient's own read.
    audit_record(action=AuditAction.RECORD_OPEN, actor=doctor.user, patient=account.patient)
    audit_record(action=AuditAction.DOCUMENT_READ, actor=doctor.user, patient=account.patient)
    audit_record(action=AuditAction.ESPACE_RECORD_VIEW, actor=account.user, patient=account.patient)
    # Neither a new document filed nor a refused attempt is an access.
    audit_record(action=AuditAction.DOCUMENT_SUBMIT, actor_label="system:import", patient=account.patient)
    audit_record(
        action=AuditAction.RECORD_OPEN,
        outcome=AuditOutcome.REFUSED,
        actor=doctor.user,
        patient=account.patient,
    )
    assert "résumés envoyés : 1, échecs : 0" in _digests()
    ((to, message),) = smtp.received
    assert to == [account.email]
    assert "2 nouvel(s) acc=C3=A8s" in message or "2 nouvel(s) accès" in message
    assert "Weber" not in message and "WEBER" not in message
    assert "/patient/journal/" in message
    event = AuditEvent.objects.get(action="espace.notify")
    assert (event.outcome, event.patient_id, event.details["accesses"]) == ("success", account.patient_id, 2)
    # Nothing new: nothing sent.
    assert "résumés envoyés : 0" in _digests()
    assert len(smtp.received) == 1


@pytest.mark.django_db
def test_the_digest_goes_by_sms_through_the_gateway_and_is_retried_after_a_failure(
    account: PatientAccount, gateway: Any
) -> None:
    PatientAccount.objects.filter(pk=account.pk).update(mobile="+352621123456")
    account.refresh_from_db()
    notifications_set(account=account, channel="sms", client_address=None)
    pharmacist = make_professional()
    audit_record(action=AuditAction.RECORD_OPEN, actor=pharmacist.user, patient=account.patient)
    gateway.status = 503
    assert "échecs : 1" in _digests()
    failed = AuditEvent.objects.get(action="espace.notify")
    assert failed.outcome == "failure"
    gateway.status = 202
    assert "résumés envoyés : 1" in _digests()
    assert [m["to"] for m in gateway.received] == ["+352621123456", "+352621123456"]
    assert gateway.received[-1]["text"].startswith("eSanté : 1 nouvel(s) accès")
    assert "https://edocuments.esante.lu/patient/journal/" in gateway.received[-1]["text"]


def test_an_emergency_access_is_told_at_once_after_its_commit(committed_db: None, settings: Any) -> None:
    account = active_account()
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = "127.0.0.1", controller.port, False
    try:
        _emergency_alert_told(account, inbox)
    finally:
        controller.stop()


def _emergency_alert_told(account: PatientAccount, smtp: Inbox) -> None:
    notifications_set(account=account, channel="email", client_address=None)
    doctor = make_professional("doctor")
    access_grant_emergency(
        professional=doctor,
        patient=account.patient,
        motif="Patient inconscient aux urgences, allergies à vérifier",
        conditions_accepted=True,
    )
    ((to, message),) = smtp.received
    assert to == [account.email]
    assert "bris de glace" in message
    assert AuditEvent.objects.filter(action="espace.notify", details__kind="emergency").count() == 1


def test_no_alert_without_a_chosen_channel(committed_db: None) -> None:
    account = active_account()
    sent_before = len(mail.outbox)
    access_grant_emergency(
        professional=make_professional("doctor"),
        patient=account.patient,
        motif="Patient inconscient aux urgences, allergies à vérifier",
        conditions_accepted=True,
    )
    assert len(mail.outbox) == sent_before
    assert not AuditEvent.objects.filter(action="espace.notify").exists()
    assert AuditEvent.objects.filter(action="access.emergency", patient=account.patient).exists()
