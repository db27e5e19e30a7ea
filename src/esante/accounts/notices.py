"""Traces and notices of the throttling: the events of the locks and delays a failure has just
imposed, and the e-mail telling a professional that the account is attacked (decided in the
attempt's transaction, sent after its commit). The counters are in ``throttling``."""

import datetime
import functools
import logging
from typing import Any

from django.conf import settings
from django.db import transaction

from esante.audit.catalogue import AuditAction
from esante.audit.models import AuditEvent
from esante.audit.services import audit_record

from .delivery import DeliveryError, attack_notice_deliver
from .models import LoginThrottle
from .throttling import REFUSED, Delay, Scope, _now, _row, client_network
from .tracing import account_trace

logger = logging.getLogger("esante.accounts.throttling")


def audit_locks(
    *,
    user: Any,
    key: str,
    account_lock: datetime.datetime | None,
    address_lock: datetime.datetime | None,
    client_address: str | None,
    scope: str = Scope.ADDRESS,
    delay: Delay | None = None,
    delay_action: AuditAction = AuditAction.LOGIN_DELAY,
) -> None:
    """Traces the locks and the delay a failure has just imposed (each in its own event)."""
    if delay is not None:
        account_trace(
            delay_action,
            key=key,
            user=user,
            client_address=client_address,
            details={"until": delay.until.isoformat(), "first": delay.first},
        )
    if account_lock is not None:
        account_trace(
            AuditAction.LOGIN_LOCK,
            key=key,
            user=user,
            client_address=client_address,
            details={"until": account_lock.isoformat()},
        )
    if address_lock is not None:
        audit_record(
            action=AuditAction.ADDRESS_LOCK,
            outcome=REFUSED,
            actor_label="anonymous",
            object_type=scope,
            object_id=client_network(client_address) or "",
            client_address=client_address,
            details={"until": address_lock.isoformat()},
        )


def attack_notify(
    *,
    account: str,
    email: str,
    factor: str,
    actor: Any,
    client_address: str | None,
    locked_until: datetime.datetime | None = None,
    letter_blocked: bool = False,
) -> bool:
    """Decides to tell the professional by e-mail that their account is attacked (``factor``:
    "password", "otp", "activation_otp" or "activation_code"), unless they were told less than
    ``ESANTE_ATTACK_NOTICE_MINUTES`` ago: no flood, whatever the attacker does. Returns whether a
    mail is to go out.

    Only the decision is taken here, in the attempt's transaction: the account's counter row gets
    ``notified_at`` (call it after ``pair_delay_check`` and before the attempt's first audit
    event). The mail is sent once the transaction commits (``transaction.on_commit``; nothing is
    sent for an attempt rolled back), and traced then in a transaction of its own
    (``accounts.attack.notify``, success or failure; after a failure ``notified_at`` is put back,
    so a later attempt tries again). A delivery failure does not change the attempt's outcome."""
    if not email or not account:
        return False
    row = _row(Scope.ACCOUNT, account)
    now = _now()
    window = datetime.timedelta(minutes=settings.ESANTE_ATTACK_NOTICE_MINUTES)
    if row.notified_at is not None and now - row.notified_at < window:
        return False
    previous = row.notified_at
    row.notified_at = now
    row.save(update_fields=["notified_at", "updated_at"])
    trigger = "letter_blocked" if letter_blocked else "lock" if locked_until is not None else "delay"
    transaction.on_commit(
        functools.partial(
            _attack_notice_send,
            account=account,
            email=email,
            factor=factor,
            actor=actor,
            client_address=client_address,
            at=now,
            previous=previous,
            locked_until=locked_until,
            letter_blocked=letter_blocked,
            details={"factor": factor, "trigger": trigger, "channel": "email"},
        ),
        robust=True,  # whatever the mail server does, the attempt has its answer
    )
    return True


def _attack_notice_send(
    *,
    account: str,
    email: str,
    factor: str,
    actor: Any,
    client_address: str | None,
    at: datetime.datetime,
    previous: datetime.datetime | None,
    locked_until: datetime.datetime | None,
    letter_blocked: bool,
    details: dict[str, Any],
) -> None:
    """Sends the notice decided by ``attack_notify``, after the attempt's commit, and traces it."""
    trace = {
        "actor": actor,
        "actor_label": "" if actor else account,
        "object_type": "account",
        "object_id": account,
        "client_address": client_address,
    }
    try:
        attack_notice_deliver(
            address=email, factor=factor, at=at, locked_until=locked_until, letter_blocked=letter_blocked
        )
    except DeliveryError as exc:
        logger.warning("attack notice to account %s not sent: %s", account, exc)
        with transaction.atomic():
            # Not told after all: the next delay or lock tries again (unless a newer notice went).
            LoginThrottle.objects.filter(scope=Scope.ACCOUNT, key=account, notified_at=at).update(
                notified_at=previous
            )
            audit_record(
                action=AuditAction.ATTACK_NOTIFY,
                outcome=AuditEvent.Outcome.FAILURE,
                details=details | {"error": str(exc)[:200]},
                **trace,
            )
        return
    audit_record(action=AuditAction.ATTACK_NOTIFY, details=details, **trace)
