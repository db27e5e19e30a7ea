"""The wizard itself: its steps, its outcome, the lock on its row, its trace; starting, resuming
and going back one step; counting a failed step (shared by steps 2 and 4)."""

import datetime
import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from esante.audit.catalogue import AuditAction, AuditOutcome
from esante.audit.models import AuditEvent
from esante.audit.services import audit_record

from ..models import (
    ActivationLetter,
    ActivationWizard,
    LoginThrottle,
    Professional,
)
from ..notices import attack_notify, audit_locks
from ..throttling import (
    Delay,
    address_failure,
    pair_failure,
)

Step = ActivationWizard.Step


REFUSED = AuditEvent.Outcome.REFUSED
FAILURE = AuditEvent.Outcome.FAILURE


class WizardStepError(Exception):
    """The wizard is not at the step asked for (skipped, replayed, expired or completed)."""


@dataclass
class StepOutcome:
    ok: bool
    message: str = ""


def current_time() -> datetime.datetime:
    return timezone.now()


def wizard_locked(wizard: ActivationWizard, step: int) -> ActivationWizard:
    """The wizard row, locked, checked to stand at ``step`` and not to be expired or completed."""
    locked = ActivationWizard.objects.select_for_update().get(pk=wizard.pk)
    if locked.completed_at is not None or locked.expires_at <= current_time() or locked.step != step:
        raise WizardStepError(f"wizard {locked.pk} is at step {locked.step}, not {step}")
    return locked


def trace(
    wizard: ActivationWizard,
    step: str,
    *,
    outcome: AuditOutcome = AuditOutcome.SUCCESS,
    client_address: str | None = None,
    **details: Any,
) -> None:
    professional = wizard.professional
    wizard_event(
        wizard,
        # One member per step: AuditAction.ACTIVATION_TERMS, _CERTIFICATE, _CODE, ... (a step
        # missing from the catalogue raises ValueError).
        AuditAction.of(f"accounts.activation.{step}"),
        actor=professional.user if professional else None,
        outcome=outcome,
        client_address=client_address,
        details=details,
    )


def wizard_event(
    wizard: ActivationWizard,
    action: AuditAction,
    *,
    actor: Any,
    details: dict[str, Any],
    outcome: AuditOutcome = AuditOutcome.SUCCESS,
    client_address: str | None = None,
) -> None:
    """The one way the activation traces an event about a wizard (a step, a code sent, a
    certificate refused); ``actor`` is the professional's user once known, else "anonymous"."""
    audit_record(
        action=action,
        outcome=outcome,
        actor=actor,
        actor_label="" if actor is not None else "anonymous",
        object_type="activation",
        object_id=wizard.pk,
        client_address=client_address,
        details=details,
    )


@transaction.atomic
def wizard_start(*, terms_version: str, client_address: str | None) -> ActivationWizard:
    """Records the acceptance of the terms (version, time) and opens a wizard at step 1."""
    now = current_time()
    wizard = ActivationWizard.objects.create(
        key=secrets.token_urlsafe(32),
        terms_version=terms_version,
        terms_accepted_at=now,
        created_at=now,
        expires_at=now + datetime.timedelta(minutes=settings.ESANTE_ACTIVATION_WIZARD_MINUTES),
    )
    trace(wizard, "terms", client_address=client_address, terms_version=terms_version)
    return wizard


def wizard_for_key(key: str | None) -> ActivationWizard | None:
    """The open wizard for a session key, or None (unknown, expired or completed)."""
    if not key:
        return None
    return (
        ActivationWizard.objects.select_related("professional")
        .filter(key=key, completed_at__isnull=True, expires_at__gt=current_time())
        .first()
    )


@transaction.atomic
def wizard_back(*, wizard: ActivationWizard, client_address: str | None) -> ActivationWizard:
    """ "Etape précédente": one step back, forgetting what the left step had established."""
    wizard = ActivationWizard.objects.select_for_update().get(pk=wizard.pk)
    if wizard.completed_at is not None or wizard.step not in (Step.CODE, Step.INFORMATION, Step.SECURITY):
        raise WizardStepError("no previous step")
    if wizard.step == Step.CODE:
        wizard.certificate_pem = ""
    if wizard.step == Step.INFORMATION:
        wizard.professional, wizard.letter = None, None
    if wizard.step == Step.SECURITY:
        wizard.password_hash = wizard.channel = wizard.channel_address = wizard.code_digest = ""
        wizard.code_valid_until = None
    wizard.step -= 1
    wizard.save()
    trace(wizard, "back", client_address=client_address, to_step=wizard.step)
    return wizard


def activation_failure(
    *,
    wizard: ActivationWizard,
    professional: Professional | None,
    letter: ActivationLetter | None,
    account: str,
    factor: str,
    client_address: str | None,
) -> tuple[Delay | None, datetime.datetime | None, bool]:
    """Counts a failed activation step (wrong activation code at step 2, wrong one-time code at
    step 4) on the (account, network) pair, on the network and, when there is one, on the letter
    (blocked after ``ESANTE_ACCOUNT_LOCK_AFTER_FAILURES``); decides to tell the professional at
    the pair's first delay and at the block (the mail goes after the commit). Returns (delay,
    network delay, letter just blocked).

    Writes no audit event: every row is locked before the chain head (the lock order of
    ``throttling``); the caller traces the attempt, then ``activation_failure_trace``."""
    blocked = False
    if letter is not None:
        letter.failed_attempts += 1
        letter.save(update_fields=["failed_attempts"])
        blocked = letter.failed_attempts == letter.max_failed_attempts
    delay = pair_failure(LoginThrottle.Scope.ACTIVATION_PAIR, account, client_address) if account else None
    address_lock = address_failure(LoginThrottle.Scope.ACTIVATION, client_address)
    if professional is not None and (blocked or (delay is not None and delay.first)):
        attack_notify(
            account=account,
            email=professional.email,
            factor=factor,
            actor=professional.user,
            client_address=client_address,
            letter_blocked=blocked,
        )
    return delay, address_lock, blocked


def activation_failure_trace(
    *,
    professional: Professional | None,
    letter: ActivationLetter | None,
    account: str,
    client_address: str | None,
    counted: tuple[Delay | None, datetime.datetime | None, bool],
) -> None:
    """Traces the block, the delay and the network delay ``activation_failure`` imposed."""
    delay, address_lock, blocked = counted
    if blocked:
        assert letter is not None  # noqa: S101 - blocked implies a letter
        audit_record(
            action=AuditAction.ACTIVATION_LETTER_BLOCK,
            outcome=REFUSED,
            actor_label="anonymous",
            object_type="activation_letter",
            object_id=letter.pk,
            client_address=client_address,
        )
    audit_locks(
        user=professional.user if professional else None,
        key=account,
        account_lock=None,
        address_lock=address_lock,
        client_address=client_address,
        scope=LoginThrottle.Scope.ACTIVATION,
        delay=delay,
        delay_action=AuditAction.ACTIVATION_DELAY,
    )
