"""Telling patients that their record was accessed: a digest of new accesses (``esante
send_access_digests``, run daily by cron or a systemd timer) and an immediate message for an
emergency access ("bris de glace"), by e-mail or SMS as the patient chose (« Mes choix »).

The messages go through the same delivery backends as the one-time codes (Django's e-mail
backend; ``ESANTE_SMS_BACKEND``). They carry nothing clinical and no name: only that accesses
happened, how many, since when, and the address of the journal. Each sending, or its failure,
is itself an event of the patient's journal (``espace.notify``). A digest that could not be
delivered is retried at the next run: the account's ``digest_sequence`` only moves on success.
"""

import datetime
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Max, QuerySet
from django.utils import formats, timezone, translation

from esante.accounts.delivery import DeliveryError, sms_backend
from esante.audit.catalogue import AuditAction, AuditOutcome
from esante.audit.models import AuditEvent
from esante.audit.services import audit_record

from .models import PatientAccount
from .selectors import JOURNAL_KINDS

logger = logging.getLogger("esante.espace.notifications")

#: What a digest counts: a professional's (or software's) access to the record and its documents
#: — not the filing of a new document, which is no access.
DIGEST_ACTIONS = tuple(
    action
    for action in JOURNAL_KINDS["acces"] + JOURNAL_KINDS["documents"] + JOURNAL_KINDS["dispensations"]
    if action != "document.submit"
)


def journal_url() -> str:
    base = (settings.ESANTE_PUBLIC_URL or "").rstrip("/")
    return f"{base}/patient/journal/"


def _deliver(account: PatientAccount, *, subject: str, text: str) -> None:
    if account.notify_channel == PatientAccount.Channel.SMS:
        sms_backend().send(to=account.mobile, text=text)
        return
    try:
        send_mail(subject=subject, message=text, from_email=None, recipient_list=[account.email])
    except OSError as exc:
        raise DeliveryError(f"e-mail not sent: {exc}") from exc


def _trace(account: PatientAccount, *, outcome: AuditOutcome, **details: object) -> None:
    with transaction.atomic():
        audit_record(
            action=AuditAction.ESPACE_NOTIFY,
            outcome=outcome,
            actor_label="system:notifications",
            patient=account.patient,
            object_type="patient_account",
            object_id=account.pk,
            details={**details, "channel": account.notify_channel},
        )


def _new_accesses(account: PatientAccount) -> "QuerySet[AuditEvent]":
    """Successful accesses by anybody but the patient since the last digest."""
    return AuditEvent.objects.filter(
        patient_id=account.patient_id,
        sequence__gt=account.digest_sequence,
        action__in=DIGEST_ACTIONS,
        outcome=AuditOutcome.SUCCESS,
    ).exclude(actor_id=account.user_id)


def new_access_events(account: PatientAccount) -> tuple[int, int | None]:
    """(number of accesses by others since the last digest, the newest sequence among them)."""
    events = _new_accesses(account)
    summary = events.aggregate(newest=Max("sequence"))
    newest = summary["newest"]
    return (events.count() if newest is not None else 0), newest


@dataclass
class DigestRun:
    accounts: int = 0
    sent: int = 0
    failed: int = 0


def digest_accounts() -> Iterator[PatientAccount]:
    return (
        PatientAccount.objects.select_related("patient", "user")
        .filter(state=PatientAccount.State.ACTIVE)
        .exclude(notify_channel="")
        .order_by("pk")
        .iterator(chunk_size=500)
    )


def access_digest_send(account: PatientAccount) -> bool | None:
    """Sends one account's digest. None: nothing new; True: sent; False: delivery failed (traced,
    retried at the next run)."""
    count, newest = new_access_events(account)
    if not count or newest is None:
        return None
    with translation.override("fr"):
        since = timezone.localtime(
            _new_accesses(account).order_by("sequence").values_list("created_at", flat=True).first()
            or timezone.now()
        )
        text = (
            f"eSanté : {count} nouvel(s) accès à votre dossier depuis le "
            f"{formats.date_format(since, 'SHORT_DATE_FORMAT')}. "
            f"Consultez votre journal d'accès : {journal_url()}"
        )
    try:
        _deliver(account, subject="eSanté : nouveaux accès à votre dossier", text=text)
    except DeliveryError as exc:
        logger.warning("access digest not delivered to account %s: %s", account.pk, exc)
        _trace(account, outcome=AuditOutcome.FAILURE, kind="digest", accesses=count, error=str(exc)[:200])
        return False
    PatientAccount.objects.filter(pk=account.pk).update(digest_sequence=newest)
    account.digest_sequence = newest
    _trace(account, outcome=AuditOutcome.SUCCESS, kind="digest", accesses=count)
    return True


def emergency_alert_send(*, patient_id: int, at: datetime.datetime) -> bool | None:
    """The immediate message for an emergency access, to a patient who chose to be notified.
    None: no account or no notification chosen."""
    account = (
        PatientAccount.objects.select_related("patient", "user")
        .filter(patient_id=patient_id, state=PatientAccount.State.ACTIVE)
        .exclude(notify_channel="")
        .first()
    )
    if account is None:
        return None
    with translation.override("fr"):
        when = timezone.localtime(at)
        text = (
            "eSanté : un accès en urgence (bris de glace) à votre dossier a eu lieu le "
            f"{formats.date_format(when, 'SHORT_DATE_FORMAT')} à {formats.time_format(when, 'H:i')}. "
            f"Consultez votre journal d'accès : {journal_url()}"
        )
    try:
        _deliver(account, subject="eSanté : accès en urgence à votre dossier", text=text)
    except DeliveryError as exc:
        logger.warning("emergency alert not delivered to account %s: %s", account.pk, exc)
        _trace(account, outcome=AuditOutcome.FAILURE, kind="emergency", error=str(exc)[:200])
        return False
    _trace(account, outcome=AuditOutcome.SUCCESS, kind="emergency")
    return True
