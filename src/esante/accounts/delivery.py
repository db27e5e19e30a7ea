"""Delivering one-time codes by e-mail and SMS, and the e-mail telling a professional that their
account is being attacked (``attack_notice_deliver``).

Both channels go through a backend chosen by settings: ``EMAIL_BACKEND`` (Django's; the default
here writes ``.eml`` files, production uses Django's SMTP backend) and ``ESANTE_SMS_BACKEND``
(file backend by default, ``HttpSmsBackend`` for a gateway in production). The file backends
write one file per message under ``OUTBOX_DIR`` (readable by the platform's user only) and, in
the demo, echo it on the console. Production refuses them unless ``ESANTE_ALLOW_FILE_OUTBOX=1``
(see settings).
"""

import contextlib
import datetime
import json
import logging
import os
import secrets
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.core.mail import EmailMessage, send_mail
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import formats, timezone, translation
from django.utils.module_loading import import_string
from django.utils.translation import gettext

logger = logging.getLogger("esante.accounts.delivery")


class DeliveryError(Exception):
    """The message could not be handed to the channel."""


def _outbox_write(suffix: str, content: bytes) -> Path:
    """Writes one message as a new file under ``OUTBOX_DIR``, readable by the platform's user only
    (directory 0700, file 0600): the messages carry one-time codes in clear."""
    outbox = Path(settings.OUTBOX_DIR)
    outbox.mkdir(mode=0o700, parents=True, exist_ok=True)
    if outbox.stat().st_mode & 0o077:
        # A directory made before (or by hand) with wider rights: narrowed when it is ours.
        with contextlib.suppress(PermissionError):
            outbox.chmod(0o700)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S%f")
    path = outbox / f"{stamp}-{secrets.token_hex(4)}{suffix}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)
    return path


def _echo(text: str) -> None:
    if settings.ESANTE_OUTBOX_ECHO:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


class FileEmailBackend(BaseEmailBackend):
    """Writes each e-mail as an RFC 5322 ``.eml`` file under ``OUTBOX_DIR``."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        sent = 0
        for message in email_messages:
            _outbox_write(".eml", message.message().as_bytes())
            _echo(f"[e-mail -> {', '.join(message.to)}] {message.subject}\n{message.body}")
            sent += 1
        return sent


class SmsBackend(Protocol):
    def send(self, *, to: str, text: str) -> None: ...


class FileSmsBackend:
    """Writes each SMS as a ``.json`` file (``{"to": ..., "text": ...}``) under ``OUTBOX_DIR``."""

    def send(self, *, to: str, text: str) -> None:
        _outbox_write(".json", json.dumps({"to": to, "text": text}, ensure_ascii=False).encode("utf-8"))
        _echo(f"[SMS -> {to}] {text}")


class HttpSmsBackend:
    """Posts ``{"to": ..., "text": ...}`` as JSON to ``ESANTE_SMS_GATEWAY_URL``.

    Sends ``Authorization: Bearer <ESANTE_SMS_GATEWAY_TOKEN>`` when a token is configured. Any
    answer other than 2xx, or no answer within 10 seconds, raises ``DeliveryError``.
    """

    timeout = 10

    def send(self, *, to: str, text: str) -> None:
        url = settings.ESANTE_SMS_GATEWAY_URL
        if not url.startswith(("https://", "http://")):
            raise DeliveryError("ESANTE_SMS_GATEWAY_URL must be an http(s) URL")
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if settings.ESANTE_SMS_GATEWAY_TOKEN:
            headers["Authorization"] = f"Bearer {settings.ESANTE_SMS_GATEWAY_TOKEN}"
        body = json.dumps({"to": to, "text": text}, ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                status = response.status
        except OSError as exc:  # URLError and HTTPError are OSErrors
            raise DeliveryError(f"SMS gateway refused or unreachable: {exc}") from exc
        if not 200 <= status < 300:
            raise DeliveryError(f"SMS gateway answered {status}")


def sms_backend() -> SmsBackend:
    backend: Any = import_string(settings.ESANTE_SMS_BACKEND)
    return backend()  # type: ignore[no-any-return]


def code_deliver(*, channel: str, address: str, code: str) -> None:
    """Sends a one-time code to a mobile number (``channel="sms"``) or an e-mail address.

    The text is in the language active when sending: the request's (French outside a request).
    """
    text = gettext(
        "eSanté : votre code à usage unique est %(code)s. Il est valable 5 minutes. "
        "Ne le communiquez à personne."
    ) % {"code": code}
    if channel == "sms":
        sms_backend().send(to=address, text=text)
        return
    try:
        send_mail(
            subject=gettext("eSanté : votre code à usage unique"),
            message=text,
            from_email=None,
            recipient_list=[address],
        )
    except OSError as exc:
        raise DeliveryError(f"e-mail not sent: {exc}") from exc


# What the attacked factor is called in the notice (French: the mail goes to the professional,
# whatever language the attacker's browser asked for).
ATTACKED_FACTORS = {
    "password": "votre mot de passe",
    "otp": "le code à usage unique",
    "activation_otp": "le code à usage unique",
    "activation_code": "votre code d'activation",
}

HELPDESK = "(+352) 27 12 50 18 33"

# What to do if it was not them. Guessing the password or the activation code is what the
# counters slow down: nothing to do. A wrong one-time code means the password (at login) or the
# activation code (activation step 4) is already known to someone else.
ADVICE = {
    "password": (
        "Si c'était vous, vous pouvez ignorer ce message. Sinon, vous n'avez rien à faire : "
        "l'Agence eSanté ne vous demandera jamais votre mot de passe ni vos codes."
    ),
    "activation_code": (
        "Si c'était vous, vous pouvez ignorer ce message. Sinon, vous n'avez rien à faire : "
        "l'Agence eSanté ne vous demandera jamais votre code d'activation."
    ),
    "otp": (
        "Si ce n'était pas vous, quelqu'un connaît votre mot de passe : changez-le sans attendre "
        "(« Mot de passe oublié ? » sur la page de connexion, avec votre produit LuxTrust) et "
        f"appelez le helpdesk au {HELPDESK}."
    ),
    "activation_otp": (
        "Si ce n'était pas vous, quelqu'un détient le code d'activation de votre courrier : "
        f"appelez sans attendre le helpdesk au {HELPDESK}, qui bloquera ce courrier et vous en "
        "enverra un nouveau."
    ),
}


def attack_notice_deliver(
    *,
    address: str,
    factor: str,
    at: datetime.datetime,
    locked_until: datetime.datetime | None = None,
    letter_blocked: bool = False,
) -> None:
    """Tells a professional by e-mail that failed attempts are being made on their account.

    Carries nothing secret and nothing an eavesdropper could use: no matricule, no code, no
    client address, only what happened, when, and what to do — which depends on the factor
    (``ADVICE``): a failed one-time code means the password, or at activation the activation
    code, is known to someone else. ``at`` and ``locked_until`` are aware datetimes, shown in
    Luxembourg time. Raises ``DeliveryError`` (an SMTP server slower than ``EMAIL_TIMEOUT``
    included).
    """
    with translation.override("fr"):
        when = timezone.localtime(at)
        lines = [
            "Bonjour,",
            "",
            f"Plusieurs tentatives de connexion infructueuses avec {ATTACKED_FACTORS[factor]} ont été "
            f"faites sur votre compte eSanté (dernière le {formats.date_format(when, 'SHORT_DATE_FORMAT')} "
            f"à {formats.time_format(when, 'H:i')}, heure de Luxembourg).",
            "",
        ]
        if letter_blocked:
            lines.append(
                "Par sécurité, votre code d'activation est bloqué : demandez un nouveau courrier "
                "d'activation au helpdesk."
            )
        elif locked_until is not None:
            until = timezone.localtime(locked_until)
            lines.append(
                "Par sécurité, la connexion par mot de passe et code est bloquée jusqu'au "
                f"{formats.date_format(until, 'SHORT_DATE_FORMAT')} à {formats.time_format(until, 'H:i')} "
                "(heure de Luxembourg). La connexion avec votre produit LuxTrust (« Connexion ») "
                "reste possible."
            )
        else:
            lines.append(
                "Les essais venant de l'adresse concernée sont ralentis ; vos propres connexions "
                "depuis un autre poste et la connexion avec votre produit LuxTrust ne sont pas affectées."
            )
        lines += [
            "",
            ADVICE[factor],
            f"Une question ? Contactez le helpdesk : {HELPDESK}, helpdesk@esante.lu.",
        ]
        subject = "eSanté : tentatives de connexion infructueuses sur votre compte"
    try:
        send_mail(subject=subject, message="\n".join(lines), from_email=None, recipient_list=[address])
    except OSError as exc:
        raise DeliveryError(f"e-mail not sent: {exc}") from exc
