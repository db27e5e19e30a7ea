"""The five-step activation (guide pp. 4-9), as services over ``ActivationWizard``.

Each service takes the wizard found by the key held in the browser's session, refuses unless the
wizard stands at the step the service belongs to (``WizardStepError``), and moves it on by one
step. The professional's account is written only by ``_activation_complete``, at the end of step 4,
in one transaction that also consumes the activation letter: two wizards racing with one letter
produce one activation.
"""

import datetime
import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext
from django_otp.plugins.otp_email.models import EmailDevice

from esante.audit.models import AuditEvent
from esante.audit.services import audit_record
from esante.patients.matricule import compact

from . import certificates
from .codes import activation_code_digest, digests_match, one_time_code_digest, one_time_code_new
from .delivery import DeliveryError, code_deliver
from .models import (
    ActivationLetter,
    ActivationWizard,
    Certificate,
    LoginThrottle,
    Professional,
    SmsDevice,
    User,
)
from .services import WRONG_ACTIVATION, mobile_normalise, resend_message
from .throttling import (
    Delay,
    account_hold,
    address_failure,
    attack_notify,
    audit_locks,
    delay_message,
    lock_message,
    pair_delay_check,
    pair_failure,
    pair_success,
    throttle_locked_until,
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


def _now() -> datetime.datetime:
    return timezone.now()


def _locked(wizard: ActivationWizard, step: int) -> ActivationWizard:
    """The wizard row, locked, checked to stand at ``step`` and not to be expired or completed."""
    locked = ActivationWizard.objects.select_for_update().get(pk=wizard.pk)
    if locked.completed_at is not None or locked.expires_at <= _now() or locked.step != step:
        raise WizardStepError(f"wizard {locked.pk} is at step {locked.step}, not {step}")
    return locked


def _trace(
    wizard: ActivationWizard,
    step: str,
    *,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    client_address: str | None = None,
    **details: Any,
) -> None:
    professional = wizard.professional
    audit_record(
        action=f"accounts.activation.{step}",
        outcome=outcome,
        actor=professional.user if professional else None,
        actor_label="" if professional else "anonymous",
        object_type="activation",
        object_id=wizard.pk,
        client_address=client_address,
        details=details,
    )


@transaction.atomic
def wizard_start(*, terms_version: str, client_address: str | None) -> ActivationWizard:
    """Records the acceptance of the terms (version, time) and opens a wizard at step 1."""
    now = _now()
    wizard = ActivationWizard.objects.create(
        key=secrets.token_urlsafe(32),
        terms_version=terms_version,
        terms_accepted_at=now,
        created_at=now,
        expires_at=now + datetime.timedelta(minutes=settings.ESANTE_ACTIVATION_WIZARD_MINUTES),
    )
    _trace(wizard, "terms", client_address=client_address, terms_version=terms_version)
    return wizard


def wizard_for_key(key: str | None) -> ActivationWizard | None:
    """The open wizard for a session key, or None (unknown, expired or completed)."""
    if not key:
        return None
    return (
        ActivationWizard.objects.select_related("professional")
        .filter(key=key, completed_at__isnull=True, expires_at__gt=_now())
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
    _trace(wizard, "back", client_address=client_address, to_step=wizard.step)
    return wizard


@transaction.atomic
def wizard_certificate(
    *, wizard: ActivationWizard, certificate_pem: str, client_address: str | None
) -> StepOutcome:
    """Step 1: the LuxTrust certificate is verified and kept until step 2 identifies the account."""
    wizard = _locked(wizard, Step.CERTIFICATE)
    try:
        verified = certificates.certificate_verify(certificate_pem)
    except certificates.CertificateRefused as exc:
        _trace(wizard, "certificate", outcome=REFUSED, client_address=client_address, reason=exc.reason)
        return StepOutcome(ok=False, message=gettext(exc.message))
    if Certificate.objects.filter(fingerprint_sha256=verified.fingerprint_sha256).exists():
        _trace(wizard, "certificate", outcome=REFUSED, client_address=client_address, reason="already_bound")
        return StepOutcome(ok=False, message=gettext("Ce certificat est déjà associé à un compte."))
    wizard.certificate_pem = verified.pem
    wizard.step = Step.CODE
    wizard.save()
    _trace(wizard, "certificate", client_address=client_address, fingerprint=verified.fingerprint_sha256)
    return StepOutcome(ok=True)


@transaction.atomic
def wizard_certificate_skip(*, wizard: ActivationWizard, client_address: str | None) -> StepOutcome:
    """Step 1 without a certificate: allowed only where ``ESANTE_ACTIVATION_CERTIFICATE_OPTIONAL``
    (the demo, which has no certificate origin yet); refused and traced elsewhere."""
    wizard = _locked(wizard, Step.CERTIFICATE)
    if not settings.ESANTE_ACTIVATION_CERTIFICATE_OPTIONAL:
        _trace(
            wizard, "certificate", outcome=REFUSED, client_address=client_address, reason="skip_not_allowed"
        )
        return StepOutcome(
            ok=False, message=gettext("Le produit LuxTrust est obligatoire pour activer votre compte.")
        )
    wizard.step = Step.CODE
    wizard.save()
    _trace(wizard, "certificate", client_address=client_address, skipped=True)
    return StepOutcome(ok=True)


def _activation_failure(
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
    ``throttling``); the caller traces the attempt, then ``_activation_failure_trace``."""
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


def _activation_failure_trace(
    *,
    professional: Professional | None,
    letter: ActivationLetter | None,
    account: str,
    client_address: str | None,
    counted: tuple[Delay | None, datetime.datetime | None, bool],
) -> None:
    """Traces the block, the delay and the network delay ``_activation_failure`` imposed."""
    delay, address_lock, blocked = counted
    if blocked:
        assert letter is not None  # noqa: S101 - blocked implies a letter
        audit_record(
            action="accounts.activation_letter.block",
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
        delay_action="accounts.activation.delay",
    )


@transaction.atomic
def wizard_code(
    *, wizard: ActivationWizard, matricule: str, code: str, client_address: str | None
) -> StepOutcome:
    """Step 2: matricule and activation code. One message for an unknown matricule and a wrong code.

    Refused (traced) while this network must wait on this matricule or is delayed as a whole
    (unless it passed this step for this matricule before). A wrong code (or an unknown
    matricule: counted the same) counts on the (matricule, network) pair (delays after three,
    growing), on the network (beyond twenty an hour, growing delays) and on the professional's
    current letter (blocked only after ``ESANTE_ACCOUNT_LOCK_AFTER_FAILURES`` from every address);
    the professional is told by e-mail. The certificate of step 1 must name the professional.
    Locks the wizard, the account's counter row, the pair's, the letter, then the chain head.
    """
    wizard = _locked(wizard, Step.CODE)
    now = _now()
    key = compact(matricule)[:13]
    if key:
        account_hold(key)
    delayed = pair_delay_check(LoginThrottle.Scope.ACTIVATION_PAIR, key, client_address) if key else None
    if delayed is not None:
        _trace(wizard, "code", outcome=REFUSED, client_address=client_address, reason="delayed", account=key)
        return StepOutcome(ok=False, message=delay_message(delayed))
    address_lock = throttle_locked_until(
        LoginThrottle.Scope.ACTIVATION,
        client_address,
        account=key,
        pair_scope=LoginThrottle.Scope.ACTIVATION_PAIR,
    )
    if address_lock is not None:
        _trace(wizard, "code", outcome=REFUSED, client_address=client_address, reason="address_locked")
        return StepOutcome(ok=False, message=lock_message(address_lock))
    professional = Professional.objects.select_related("user").filter(matricule=key).first() if key else None
    letter = None
    if professional is not None and professional.state != Professional.State.SUSPENDED:
        letter = (
            ActivationLetter.objects.select_for_update()
            .filter(professional=professional, used_at__isnull=True, revoked_at__isnull=True)
            .order_by("-issued_at")
            .first()
        )
    reason = ""
    if letter is None:
        reason = "unknown_matricule_or_no_letter"
    elif not letter.is_usable(now):
        reason = (
            "letter_blocked" if letter.failed_attempts >= letter.max_failed_attempts else "letter_expired"
        )
    elif not digests_match(letter.code_digest, activation_code_digest(code)):
        reason = "wrong_code"
    if reason:
        counted = _activation_failure(
            wizard=wizard,
            professional=professional,
            letter=letter if reason == "wrong_code" else None,
            account=key,
            factor="activation_code",
            client_address=client_address,
        )
        _trace(
            wizard,
            "code",
            outcome=FAILURE,
            client_address=client_address,
            reason=reason,
            letter=letter.pk if letter else None,
        )
        _activation_failure_trace(
            professional=professional,
            letter=letter if reason == "wrong_code" else None,
            account=key,
            client_address=client_address,
            counted=counted,
        )
        delay, new_lock, _ = counted
        if new_lock is not None:
            return StepOutcome(ok=False, message=lock_message(new_lock))
        if delay is not None:
            return StepOutcome(ok=False, message=delay_message(delay.until))
        return StepOutcome(ok=False, message=gettext(WRONG_ACTIVATION))
    assert professional is not None and letter is not None  # noqa: S101 - narrowed by reason == ""
    if wizard.certificate_pem:
        verified = certificates.certificate_verify(wizard.certificate_pem)
        if not certificates.certificate_holder_matches(
            verified,
            last_name=professional.last_name,
            first_name=professional.first_name,
            matricule=professional.matricule,
        ):
            wizard.certificate_pem = ""
            wizard.step = Step.CERTIFICATE
            wizard.save()
            audit_record(
                action="accounts.activation.certificate_mismatch",
                outcome=REFUSED,
                actor=professional.user,
                object_type="activation",
                object_id=wizard.pk,
                client_address=client_address,
                details={"subject": verified.subject},
            )
            return StepOutcome(
                ok=False,
                message=gettext(
                    "Le certificat présenté n'est pas au nom du titulaire de ce matricule. "
                    "Présentez votre propre produit LuxTrust."
                ),
            )
    pair_success(LoginThrottle.Scope.ACTIVATION_PAIR, key, client_address)
    wizard.professional, wizard.letter, wizard.step = professional, letter, Step.INFORMATION
    wizard.save()
    _trace(wizard, "code", client_address=client_address, letter=letter.pk)
    return StepOutcome(ok=True)


@transaction.atomic
def wizard_information(*, wizard: ActivationWizard, client_address: str | None) -> StepOutcome:
    """Step 3: the professional has checked the register's data."""
    wizard = _locked(wizard, Step.INFORMATION)
    wizard.step = Step.SECURITY
    wizard.save()
    _trace(wizard, "information", client_address=client_address)
    return StepOutcome(ok=True)


@transaction.atomic
def wizard_security_choose(
    *, wizard: ActivationWizard, password: str, channel: str, address: str, client_address: str | None
) -> StepOutcome:
    """Step 4a: password (Django's validators) and channel; sends a code to check the channel.

    Raises ``ValidationError`` (keyed by form field) for a weak password or an invalid
    number/address. A new code is
    sent at most once per ``ESANTE_OTP_RESEND_SECONDS``.
    """
    wizard = _locked(wizard, Step.SECURITY)
    professional = wizard.professional
    assert professional is not None  # noqa: S101 - set at step 2
    errors: dict[str, list[str]] = {}
    try:
        validate_password(password, user=professional.user)
    except ValidationError as exc:
        errors["password1"] = exc.messages
    try:
        if channel == "sms":
            address = mobile_normalise(address)
        elif channel == "email":
            validate_email(address)
        else:
            errors["channel"] = [gettext("Choisissez « Mobile » ou « E-mail ».")]
    except ValidationError:
        errors["address"] = [
            gettext("Le numéro de mobile n'est pas valide.")
            if channel == "sms"
            else gettext("L'adresse e-mail n'est pas valide.")
        ]
    if errors:
        raise ValidationError(errors)
    now = _now()
    if wizard.code_sent_at and now - wizard.code_sent_at < datetime.timedelta(
        seconds=settings.ESANTE_OTP_RESEND_SECONDS
    ):
        ready = wizard.code_sent_at + datetime.timedelta(seconds=settings.ESANTE_OTP_RESEND_SECONDS)
        return StepOutcome(ok=False, message=resend_message(ready))
    code = one_time_code_new()
    wizard.password_hash = make_password(password)
    wizard.channel, wizard.channel_address = channel, address
    wizard.code_digest = one_time_code_digest(f"activation:{wizard.pk}", code)
    wizard.code_valid_until = now + datetime.timedelta(seconds=settings.ESANTE_OTP_VALID_SECONDS)
    wizard.code_sent_at = now
    wizard.code_failed_attempts = 0
    wizard.save()
    try:
        code_deliver(channel=channel, address=address, code=code)
    except DeliveryError as exc:
        wizard.code_digest, wizard.code_valid_until, wizard.code_sent_at = "", None, None
        wizard.save()
        audit_record(
            action="accounts.otp.send",
            outcome=FAILURE,
            actor=professional.user,
            object_type="activation",
            object_id=wizard.pk,
            client_address=client_address,
            details={"channel": channel, "error": str(exc)[:200]},
        )
        return StepOutcome(
            ok=False, message=gettext("Le code n'a pas pu être envoyé. Vérifiez le numéro ou l'adresse.")
        )
    audit_record(
        action="accounts.otp.send",
        actor=professional.user,
        object_type="activation",
        object_id=wizard.pk,
        client_address=client_address,
        details={"channel": channel},
    )
    return StepOutcome(ok=True)


@transaction.atomic
def wizard_security_verify(*, wizard: ActivationWizard, code: str, client_address: str | None) -> StepOutcome:
    """Step 4b: the code received proves the channel; the activation is then completed.

    Refused (traced) while this network must wait on this account or is delayed as a whole
    (unless known for this account). A wrong code counts on the (account, network) pair, on the
    network and on the letter, as a wrong activation code does; three wrong codes kill the code
    (a new one is sent with « Valider »). Whoever gets here holds the activation code: the notice
    says so (factor ``activation_otp``). Locks the wizard, the account's counter row, the pair's,
    the letter, then the chain head.
    """
    wizard = _locked(wizard, Step.SECURITY)
    professional = wizard.professional
    assert professional is not None  # noqa: S101 - set at step 2
    key = professional.matricule
    account_hold(key)
    delayed = pair_delay_check(LoginThrottle.Scope.ACTIVATION_PAIR, key, client_address)
    if delayed is not None:
        _trace(wizard, "security", outcome=REFUSED, client_address=client_address, reason="delayed")
        return StepOutcome(ok=False, message=delay_message(delayed))
    address_lock = throttle_locked_until(
        LoginThrottle.Scope.ACTIVATION,
        client_address,
        account=key,
        pair_scope=LoginThrottle.Scope.ACTIVATION_PAIR,
    )
    if address_lock is not None:
        _trace(wizard, "security", outcome=REFUSED, client_address=client_address, reason="address_locked")
        return StepOutcome(ok=False, message=lock_message(address_lock))
    now = _now()
    if not wizard.code_digest or wizard.code_valid_until is None or now >= wizard.code_valid_until:
        _trace(wizard, "security", outcome=FAILURE, client_address=client_address, reason="no_live_code")
        return StepOutcome(
            ok=False,
            message=gettext(
                "Ce code n'est plus valable. Cliquez sur « Valider » pour en recevoir un nouveau."
            ),
        )
    if not digests_match(wizard.code_digest, one_time_code_digest(f"activation:{wizard.pk}", code)):
        wizard.code_failed_attempts += 1
        if wizard.code_failed_attempts >= settings.ESANTE_OTP_MAX_TRIES:
            wizard.code_digest, wizard.code_valid_until = "", None
        wizard.save()
        letter = (
            ActivationLetter.objects.select_for_update().filter(pk=wizard.letter_id).first()
            if wizard.letter_id is not None
            else None
        )
        counted = _activation_failure(
            wizard=wizard,
            professional=professional,
            letter=letter,
            account=key,
            factor="activation_otp",
            client_address=client_address,
        )
        _trace(wizard, "security", outcome=FAILURE, client_address=client_address, reason="wrong_code")
        _activation_failure_trace(
            professional=professional,
            letter=letter,
            account=key,
            client_address=client_address,
            counted=counted,
        )
        delay, new_lock, _ = counted
        if new_lock is not None:
            return StepOutcome(ok=False, message=lock_message(new_lock))
        if delay is not None:
            return StepOutcome(ok=False, message=delay_message(delay.until))
        return StepOutcome(ok=False, message=gettext("Le code saisi est incorrect."))
    pair_success(LoginThrottle.Scope.ACTIVATION_PAIR, key, client_address)
    return _activation_complete(wizard=wizard, client_address=client_address)


def _activation_complete(*, wizard: ActivationWizard, client_address: str | None) -> StepOutcome:
    """Consumes the letter and activates the account, its code device and its certificate."""
    now = _now()
    assert wizard.professional_id is not None and wizard.letter_id is not None  # noqa: S101 - set at step 2
    professional = Professional.objects.select_for_update().get(pk=wizard.professional_id)
    letter = ActivationLetter.objects.select_for_update().get(pk=wizard.letter_id)
    if not letter.is_usable(now) or professional.state == Professional.State.SUSPENDED:
        wizard.completed_at = now
        wizard.save()
        _trace(wizard, "complete", outcome=REFUSED, client_address=client_address, reason="letter_not_usable")
        return StepOutcome(ok=False, message=gettext(WRONG_ACTIVATION))
    letter.used_at = now
    letter.save(update_fields=["used_at"])
    user = User.objects.select_for_update().get(pk=professional.user_id)
    user.password = wizard.password_hash
    user.is_active = True
    user.save(update_fields=["password", "is_active"])
    # One login device: a new activation (e.g. a forgotten password) replaces the old ones.
    EmailDevice.objects.filter(user=user).delete()
    SmsDevice.objects.filter(user=user).delete()
    if wizard.channel == "sms":
        SmsDevice.objects.create(user=user, name="SMS", number=wizard.channel_address, confirmed=True)
    else:
        EmailDevice.objects.create(user=user, name="E-mail", email=wizard.channel_address, confirmed=True)
    fingerprint = ""
    if wizard.certificate_pem:
        verified = certificates.certificate_verify(wizard.certificate_pem)
        fingerprint = verified.fingerprint_sha256
        Certificate.objects.create(
            professional=professional,
            subject=verified.subject[:500],
            issuer=verified.issuer[:500],
            serial=verified.serial,
            fingerprint_sha256=fingerprint,
            not_before=verified.not_before,
            not_after=verified.not_after,
            bound_at=now,
        )
    professional.state = Professional.State.ACTIVE
    professional.terms_version, professional.terms_accepted_at = (
        wizard.terms_version,
        wizard.terms_accepted_at,
    )
    professional.save(update_fields=["state", "terms_version", "terms_accepted_at"])
    wizard.step, wizard.completed_at = Step.CONFIRMATION, now
    wizard.password_hash = wizard.code_digest = wizard.certificate_pem = ""
    wizard.save()
    _trace(wizard, "complete", client_address=client_address, channel=wizard.channel, certificate=fingerprint)
    return StepOutcome(ok=True)
