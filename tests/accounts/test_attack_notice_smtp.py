"""The attack notice through a real, slow SMTP server (aiosmtpd on 127.0.0.1) and real commits.

The notice is decided in the attempt's transaction and sent after its commit: while the mail
server takes its time, no row lock and no lock on the audit chain head is held, so an unrelated
audited action and the professional's own login do not wait. The mail still goes out in the
request's thread: the attempt that triggers it answers once the server has (at most
``EMAIL_TIMEOUT`` later) — measured here and accepted. ``EMAIL_TIMEOUT`` bounds that wait.
"""

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.db import connections

from esante.accounts.login import LoginOutcome, login_password
from esante.accounts.models import LoginThrottle
from esante.audit.catalogue import AuditAction
from esante.audit.models import AuditEvent
from esante.audit.services import audit_record

from .conftest import PASSWORD, make_active

MATRICULE = "19800101002"
ATTACKER = "203.0.113.66"


class SlowServer:
    """An aiosmtpd handler answering DATA after ``delay`` seconds; keeps what it received."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.talking = threading.Event()  # a client has started a mail
        self.received: list[str] = []

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        envelope.mail_from = address
        self.talking.set()
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.delay)
        self.received.append(envelope.content.decode("utf-8", errors="replace"))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp(settings: Any, request: Any) -> Iterator[SlowServer]:
    handler = SlowServer(delay=request.param)
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS = False
    try:
        yield handler
    finally:
        controller.stop()


def _third_wrong_password(results: dict[str, Any]) -> None:
    """The attacker's third wrong password: the pair's first delay, so a notice is due."""
    started = time.monotonic()
    try:
        results["outcome"] = login_password(matricule=MATRICULE, password="bad", client_address=ATTACKER)
    except Exception as error:  # reported by the assertions
        results["outcome"] = error
    finally:
        results["seconds"] = time.monotonic() - started
        connections.close_all()


def test_email_timeout_is_set_for_the_smtp_backend(settings: Any) -> None:
    assert settings.EMAIL_TIMEOUT == 10


@pytest.mark.parametrize("smtp", [2.0], indirect=True)
def test_regression_a_slow_mail_server_holds_no_lock(
    committed_db: None, smtp: SlowServer, settings: Any
) -> None:
    """On the reviewed branch the notice went out inside the attempt's transaction, holding the
    platform-wide audit chain head: a 3 s mail server made an unrelated audited action wait."""
    settings.EMAIL_TIMEOUT = 10
    # Codes by SMS (file backend): only the notice goes through the slow mail server.
    make_active(
        matricule=MATRICULE, last_name="Schmit", first_name="Luc", email="luc.schmit@pharma.lu", channel="sms"
    )
    for _ in range(2):
        login_password(matricule=MATRICULE, password="bad", client_address=ATTACKER)
    results: dict[str, Any] = {}
    attacker = threading.Thread(target=_third_wrong_password, args=(results,))
    attacker.start()
    assert smtp.talking.wait(timeout=10)  # the attempt has committed; the server is slow to answer

    started = time.monotonic()
    unrelated = audit_record(action=AuditAction.RECORD_OPEN, actor_label="someone else")
    unrelated_seconds = time.monotonic() - started
    started = time.monotonic()
    own = login_password(matricule=MATRICULE, password=PASSWORD, client_address="198.51.100.10")
    own_seconds = time.monotonic() - started
    attacker.join(timeout=30)

    assert unrelated_seconds < 0.5, unrelated_seconds
    assert own.ok and own_seconds < 1.0, own_seconds  # the account's rows are free too
    assert isinstance(results["outcome"], LoginOutcome) and results["outcome"].delayed_until is not None
    # The triggering attempt itself answers after the mail server (in the request's thread).
    assert results["seconds"] >= smtp.delay - 0.2, results
    (mail,) = smtp.received
    assert "Plusieurs tentatives de connexion infructueuses avec votre mot de passe" in mail.replace(
        "=\r\n", ""
    )
    notice = AuditEvent.objects.get(action="accounts.attack.notify")
    assert notice.outcome == "success" and notice.sequence > unrelated.sequence  # traced after the mail
    assert LoginThrottle.objects.get(scope="account", key=MATRICULE).notified_at is not None


@pytest.mark.parametrize("smtp", [3.0], indirect=True)
def test_a_mail_server_slower_than_email_timeout_is_a_traced_failure(
    committed_db: None, smtp: SlowServer, settings: Any
) -> None:
    settings.EMAIL_TIMEOUT = 1
    make_active(matricule=MATRICULE, last_name="Schmit", first_name="Luc", email="luc.schmit@pharma.lu")
    for _ in range(2):
        login_password(matricule=MATRICULE, password="bad", client_address=ATTACKER)
    results: dict[str, Any] = {}
    _third_wrong_password(results)
    assert results["seconds"] < 2.5, results  # EMAIL_TIMEOUT, not the server's 3 s
    assert results["outcome"].delayed_until is not None  # the attempt's answer is unchanged
    notice = AuditEvent.objects.get(action="accounts.attack.notify")
    assert notice.outcome == "failure" and "timed out" in notice.details["error"]
    attempt = AuditEvent.objects.filter(action="accounts.login.delay").get()
    assert notice.sequence > attempt.sequence
    # Not told after all: the next delay of the account tries again.
    assert LoginThrottle.objects.get(scope="account", key=MATRICULE).notified_at is None
