"""Patient accounts: registration with a letter (``esante issue_patient_activation``), the
three-step activation, and the login key.

The same rules as a professional's account, built from the same parts (``esante.accounts``): the
letter's code kept only as a keyed digest and compared in constant time; the (account, network)
pair delayed after three wrong codes, the network after twenty an hour, the letter blocked after
``ESANTE_ACCOUNT_LOCK_AFTER_FAILURES``; a one-time code proving the chosen channel; a password
checked by Django's validators; every step traced. The throttling keys of a patient account are
its username (``patient:<matricule>``), so a patient's counters never touch the professional
account that may carry the same matricule.
"""

import datetime
import re
import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django_otp.plugins.otp_email.models import EmailDevice

from esante.accounts import certificates
from esante.accounts.activation.security import security_choice_check
from esante.accounts.codes import (
    activation_code_digest,
    activation_code_new,
    digests_match,
    one_time_code_digest,
    one_time_code_new,
)
from esante.accounts.delivery import DeliveryError, code_deliver
from esante.accounts.models import LoginThrottle, SmsDevice, User
from esante.accounts.notices import attack_notify, audit_locks
from esante.accounts.otp import OtpCheck, otp_verify
from esante.accounts.services import WRONG_ACTIVATION, resend_message
from esante.accounts.throttling import (
    account_hold,
    address_failure,
    delay_message,
    lock_message,
    pair_delay_check,
    pair_failure,
    pair_success,
    throttle_locked_until,
)
from esante.audit.catalogue import AuditAction, AuditOutcome
from esante.audit.services import audit_record
from esante.patients.matricule import compact
from esante.patients.models import Patient

from .models import PatientAccount, PatientActivation, PatientCertificate, PatientLetter, patient_username

Step = PatientActivation.Step
REFUSED = AuditOutcome.REFUSED
FAILURE = AuditOutcome.FAILURE


class ActivationStepError(Exception):
    """The activation is not at the step asked for (skipped, replayed, expired or completed)."""


@dataclass
class StepOutcome:
    ok: bool
    message: str = ""


def account_key(matricule: str) -> str:
    """The login and throttling key of a patient account: its username."""
    return patient_username(compact(matricule)[:13])


# --- registration and letters -----------------------------------------------------------------


def _account_register(patient: Patient) -> PatientAccount:
    """The patient's account, registered (not active, no usable password) if it was not yet;
    locked for the caller's transaction."""
    user, created = User.objects.get_or_create(
        username=patient_username(patient.matricule),
        defaults={"first_name": patient.first_names[:150], "last_name": patient.display_name[:150]},
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    account, _ = PatientAccount.objects.get_or_create(patient=patient, defaults={"user": user})
    return PatientAccount.objects.select_related("user", "patient").select_for_update().get(pk=account.pk)


@transaction.atomic
def patient_letter_issue(*, patient: Patient, actor_label: str = "system:cli") -> tuple[PatientLetter, str]:
    """Registers the patient's account if needed and issues a new activation letter; returns it
    with the code to print (never stored). Earlier open letters are revoked. Refuses a suspended
    account (``ValidationError``)."""
    account = _account_register(patient)
    if account.state == PatientAccount.State.SUSPENDED:
        raise ValidationError("Ce compte patient est suspendu : réactivez-le avant d'émettre un courrier.")
    now = timezone.now()
    revoked = PatientLetter.objects.filter(
        account=account, used_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=now)
    code = activation_code_new()
    letter = PatientLetter.objects.create(
        account=account,
        code_digest=activation_code_digest(code),
        issued_at=now,
        expires_at=now + datetime.timedelta(days=settings.ESANTE_ACTIVATION_LETTER_DAYS),
        issued_by=actor_label,
    )
    audit_record(
        action=AuditAction.ESPACE_LETTER_ISSUE,
        actor_label=actor_label,
        patient=patient,
        object_type="patient_letter",
        object_id=letter.pk,
        details={"revoked_letters": revoked},
    )
    return letter, code


# --- the activation ---------------------------------------------------------------------------


def _trace(
    activation: PatientActivation,
    action: AuditAction,
    *,
    outcome: AuditOutcome = AuditOutcome.SUCCESS,
    client_address: str | None,
    **details: Any,
) -> None:
    account = activation.account
    audit_record(
        action=action,
        outcome=outcome,
        actor=account.user if account is not None else None,
        actor_label="" if account is not None else "anonymous",
        patient=account.patient if account is not None else None,
        object_type="patient_activation",
        object_id=activation.pk,
        client_address=client_address,
        details=details,
    )


def activation_start(*, terms_version: str) -> PatientActivation:
    """Opens an activation at step 1 (the terms accepted are recorded with step 1's success)."""
    now = timezone.now()
    return PatientActivation.objects.create(
        key=secrets.token_urlsafe(32),
        terms_version=terms_version,
        created_at=now,
        expires_at=now + datetime.timedelta(minutes=settings.ESANTE_ACTIVATION_WIZARD_MINUTES),
    )


def activation_for_key(key: str | None) -> PatientActivation | None:
    if not key:
        return None
    return (
        PatientActivation.objects.select_related("account__patient")
        .filter(key=key, completed_at__isnull=True, expires_at__gt=timezone.now())
        .first()
    )


def _locked(activation: PatientActivation, step: int) -> PatientActivation:
    locked = (
        PatientActivation.objects.select_for_update(of=("self",))
        .select_related("account__patient")
        .get(pk=activation.pk)
    )
    if locked.completed_at is not None or locked.expires_at <= timezone.now() or locked.step != step:
        raise ActivationStepError(f"patient activation {locked.pk} is at step {locked.step}, not {step}")
    return locked


def _network_refusal(
    activation: PatientActivation, action: AuditAction, key: str, client_address: str | None
) -> StepOutcome | None:
    """This network waits on this account, or is delayed as a whole (traced)."""
    delayed = pair_delay_check(LoginThrottle.Scope.ACTIVATION_PAIR, key, client_address)
    if delayed is not None:
        _trace(activation, action, outcome=REFUSED, client_address=client_address, reason="delayed")
        return StepOutcome(ok=False, message=delay_message(delayed))
    address_lock = throttle_locked_until(
        LoginThrottle.Scope.ACTIVATION,
        client_address,
        account=key,
        pair_scope=LoginThrottle.Scope.ACTIVATION_PAIR,
    )
    if address_lock is not None:
        _trace(activation, action, outcome=REFUSED, client_address=client_address, reason="address_locked")
        return StepOutcome(ok=False, message=lock_message(address_lock))
    return None


def _failure(
    activation: PatientActivation,
    action: AuditAction,
    *,
    account: PatientAccount | None,
    letter: PatientLetter | None,
    key: str,
    factor: str,
    reason: str,
    client_address: str | None,
) -> StepOutcome:
    """Counts a wrong code on the pair, the network and the letter; tells the patient at the
    pair's first delay and at the block (by e-mail, when the account has an address); traces."""
    blocked = False
    if letter is not None:
        letter.failed_attempts += 1
        letter.save(update_fields=["failed_attempts"])
        blocked = letter.failed_attempts == letter.max_failed_attempts
    delay = pair_failure(LoginThrottle.Scope.ACTIVATION_PAIR, key, client_address)
    address_lock = address_failure(LoginThrottle.Scope.ACTIVATION, client_address)
    if account is not None and account.email and (blocked or (delay is not None and delay.first)):
        attack_notify(
            account=key,
            email=account.email,
            factor=factor,
            actor=account.user,
            client_address=client_address,
            letter_blocked=blocked,
        )
    _trace(activation, action, outcome=FAILURE, client_address=client_address, reason=reason)
    if blocked:
        assert letter is not None  # noqa: S101 - blocked implies a letter
        _trace(
            activation,
            action,
            outcome=REFUSED,
            client_address=client_address,
            reason="letter_blocked",
            letter=letter.pk,
        )
    audit_locks(
        user=account.user if account is not None else None,
        key=key,
        account_lock=None,
        address_lock=address_lock,
        client_address=client_address,
        scope=LoginThrottle.Scope.ACTIVATION,
        delay=delay,
        delay_action=AuditAction.ACTIVATION_DELAY,
    )
    if address_lock is not None:
        return StepOutcome(ok=False, message=lock_message(address_lock))
    if delay is not None:
        return StepOutcome(ok=False, message=delay_message(delay.until))
    if factor == "activation_otp":
        return StepOutcome(ok=False, message=gettext("Le code saisi est incorrect."))
    return StepOutcome(ok=False, message=gettext(WRONG_ACTIVATION))


@transaction.atomic
def activation_code(
    *, activation: PatientActivation, matricule: str, code: str, client_address: str | None
) -> StepOutcome:
    """Step 1: the matricule and the letter's code (one message for an unknown matricule and a
    wrong code, counted the same). Locks the activation, the account's counter row, the pair's,
    the letter, then the chain head."""
    activation = _locked(activation, Step.CODE)
    key = account_key(matricule)
    account_hold(key)
    refused = _network_refusal(activation, AuditAction.ESPACE_ACTIVATION_CODE, key, client_address)
    if refused is not None:
        return refused
    account = (
        PatientAccount.objects.select_related("user", "patient")
        .filter(user__username=key)
        .exclude(state=PatientAccount.State.SUSPENDED)
        .first()
    )
    letter = (
        PatientLetter.objects.select_for_update()
        .filter(account=account, used_at__isnull=True, revoked_at__isnull=True)
        .order_by("-issued_at")
        .first()
        if account is not None
        else None
    )
    now = timezone.now()
    if letter is None:
        reason = "unknown_matricule_or_no_letter"
    elif not letter.is_usable(now):
        reason = (
            "letter_blocked" if letter.failed_attempts >= letter.max_failed_attempts else "letter_expired"
        )
    elif not digests_match(letter.code_digest, activation_code_digest(code)):
        reason = "wrong_code"
    else:
        reason = ""
    if reason:
        return _failure(
            activation,
            AuditAction.ESPACE_ACTIVATION_CODE,
            account=account,
            letter=letter if reason == "wrong_code" else None,
            key=key,
            factor="activation_code",
            reason=reason,
            client_address=client_address,
        )
    assert account is not None and letter is not None  # noqa: S101 - narrowed by reason == ""
    pair_success(LoginThrottle.Scope.ACTIVATION_PAIR, key, client_address)
    activation.account, activation.letter, activation.step = account, letter, Step.SECURITY
    activation.save()
    _trace(
        activation,
        AuditAction.ESPACE_ACTIVATION_CODE,
        client_address=client_address,
        terms_version=activation.terms_version,
    )
    return StepOutcome(ok=True)


#: The natural-person identifier of a qualified certificate (ETSI EN 319 412-1, 5.1.3: « PNO »,
#: the country, the national number): on a Luxembourg eID card or LuxTrust product, the matricule.
NATIONAL_IDENTIFIER = re.compile(r"PNOLU-(\d{13})")

_CERTIFICATE_REFUSALS = {
    "holder_unknown": _(
        "Ce certificat ne permet pas de vous identifier dans le registre national. Activez votre "
        "espace avec le courrier d'activation reçu par la poste."
    ),
    "bound_elsewhere": _("Ce certificat est déjà associé à un autre espace patient."),
    "already_active": _(
        "Votre espace patient est déjà activé : connectez-vous. Mot de passe oublié : demandez un "
        "nouveau courrier d'activation à l'Agence eSanté."
    ),
    "account_suspended": _("Cet espace patient est suspendu. Contactez l'Agence eSanté."),
}


def _certificate_patient(verified: certificates.VerifiedCertificate) -> Patient | None:
    """The registered patient the certificate names: its national identifier is their matricule
    and its holder's names are theirs (birth or usage name); None otherwise."""
    found = NATIONAL_IDENTIFIER.fullmatch(verified.serial_number_attribute.strip())
    patient = Patient.objects.filter(matricule=found.group(1)).first() if found else None
    if patient is None:
        return None
    names = {patient.birth_name, patient.usage_name} - {""}
    if any(
        certificates.certificate_holder_matches(
            verified, last_name=name, first_name=patient.first_names, matricule=patient.matricule
        )
        for name in names
    ):
        return patient
    return None


@transaction.atomic
def activation_certificate(
    *, activation: PatientActivation, certificate_pem: str, client_address: str | None
) -> StepOutcome:
    """Step 1 without a letter: a LuxTrust product or eID card, verified as at a certificate
    login (chain, validity, revocation), that names a registered patient. The account is
    registered if it was not (as for a letter); the certificate is bound at the last step, so
    that it then logs in by itself. A certificate cannot be guessed: no counter, every refusal
    traced (naming the patient when the certificate carries a registered matricule)."""
    activation = _locked(activation, Step.CODE)
    try:
        verified = certificates.certificate_verify(certificate_pem)
    except certificates.CertificateRefused as exc:
        _trace(
            activation,
            AuditAction.ESPACE_ACTIVATION_CERTIFICATE,
            outcome=FAILURE,
            client_address=client_address,
            reason=exc.reason,
        )
        return StepOutcome(ok=False, message=gettext(exc.message))
    patient = _certificate_patient(verified)
    account = PatientAccount.objects.filter(patient=patient).first() if patient is not None else None
    if patient is None:
        reason = "holder_unknown"
    elif PatientCertificate.objects.filter(fingerprint_sha256=verified.fingerprint_sha256).exists():
        reason = "bound_elsewhere"
    elif account is not None and account.state == PatientAccount.State.SUSPENDED:
        reason = "account_suspended"
    elif account is not None and account.state == PatientAccount.State.ACTIVE:
        reason = "already_active"
    else:
        reason = ""
    if reason:
        named = NATIONAL_IDENTIFIER.fullmatch(verified.serial_number_attribute.strip())
        audit_record(
            action=AuditAction.ESPACE_ACTIVATION_CERTIFICATE,
            outcome=REFUSED,
            actor=account.user if account is not None else None,
            actor_label="" if account is not None else "anonymous",
            patient=patient or Patient.objects.filter(matricule=named.group(1) if named else "").first(),
            object_type="patient_activation",
            object_id=activation.pk,
            client_address=client_address,
            details={"reason": reason, "fingerprint": verified.fingerprint_sha256},
        )
        return StepOutcome(ok=False, message=str(_CERTIFICATE_REFUSALS[reason]))
    assert patient is not None  # noqa: S101 - narrowed by reason == ""
    activation.account = _account_register(patient)
    activation.certificate_pem = verified.pem
    activation.step = Step.SECURITY
    activation.save()
    _trace(
        activation,
        AuditAction.ESPACE_ACTIVATION_CERTIFICATE,
        client_address=client_address,
        terms_version=activation.terms_version,
        fingerprint=verified.fingerprint_sha256,
    )
    return StepOutcome(ok=True)


@transaction.atomic
def activation_security(
    *, activation: PatientActivation, password: str, channel: str, address: str, client_address: str | None
) -> StepOutcome:
    """Step 2: the password (Django's validators) and the channel; sends a one-time code to that
    channel (at most once per ``ESANTE_OTP_RESEND_SECONDS``). ``ValidationError`` keyed by form
    field for a weak password or a bad number or address."""
    activation = _locked(activation, Step.SECURITY)
    account = activation.account
    assert account is not None  # noqa: S101 - set at step 1
    address = security_choice_check(password=password, channel=channel, address=address, user=account.user)
    now = timezone.now()
    resend = datetime.timedelta(seconds=settings.ESANTE_OTP_RESEND_SECONDS)
    if activation.code_sent_at and now - activation.code_sent_at < resend:
        return StepOutcome(ok=False, message=resend_message(activation.code_sent_at + resend))
    code = one_time_code_new()
    activation.password_hash = make_password(password)
    activation.channel, activation.channel_address = channel, address
    activation.code_digest = one_time_code_digest(f"patient-activation:{activation.pk}", code)
    activation.code_valid_until = now + datetime.timedelta(seconds=settings.ESANTE_OTP_VALID_SECONDS)
    activation.code_sent_at = now
    activation.code_failed_attempts = 0
    activation.step = Step.CONFIRMATION
    activation.save()
    try:
        code_deliver(channel=channel, address=address, code=code)
    except DeliveryError as exc:
        activation.code_digest, activation.code_valid_until, activation.code_sent_at = "", None, None
        activation.step = Step.SECURITY
        activation.save()
        _trace(
            activation,
            AuditAction.OTP_SEND,
            outcome=FAILURE,
            client_address=client_address,
            channel=channel,
            error=str(exc)[:200],
        )
        return StepOutcome(
            ok=False, message=gettext("Le code n'a pas pu être envoyé. Vérifiez le numéro ou l'adresse.")
        )
    _trace(activation, AuditAction.ESPACE_ACTIVATION_SECURITY, client_address=client_address, channel=channel)
    return StepOutcome(ok=True)


@transaction.atomic
def activation_back(*, activation: PatientActivation) -> None:
    """From the code's page back to step 2 (another channel, or a new code): nothing is kept."""
    activation = _locked(activation, Step.CONFIRMATION)
    activation.step = Step.SECURITY
    activation.code_digest, activation.code_valid_until = "", None
    activation.save()


@transaction.atomic
def activation_confirm(
    *, activation: PatientActivation, code: str, client_address: str | None
) -> StepOutcome:
    """Step 3: the one-time code proves the channel; the account is then activated and the letter
    consumed. A wrong code counts as a wrong letter code does; three kill the code."""
    activation = _locked(activation, Step.CONFIRMATION)
    account = activation.account
    assert account is not None  # noqa: S101 - set at step 1
    key = account.user.get_username()
    account_hold(key)
    refused = _network_refusal(activation, AuditAction.ESPACE_ACTIVATION_COMPLETE, key, client_address)
    if refused is not None:
        return refused
    verdict = otp_verify(
        scope=f"patient-activation:{activation.pk}",
        digest=activation.code_digest,
        valid_until=activation.code_valid_until,
        failures=activation.code_failed_attempts,
        code=code,
    )
    if verdict.result is OtpCheck.EXPIRED:
        _trace(
            activation,
            AuditAction.ESPACE_ACTIVATION_COMPLETE,
            outcome=FAILURE,
            client_address=client_address,
            reason="no_live_code",
        )
        return StepOutcome(
            ok=False,
            message=gettext(
                "Ce code n'est plus valable. Revenez à l'étape précédente pour en recevoir un nouveau."
            ),
        )
    if verdict.result is OtpCheck.WRONG:
        activation.code_failed_attempts = verdict.failures
        if verdict.spent:
            activation.code_digest, activation.code_valid_until = "", None
        activation.save()
        letter = PatientLetter.objects.select_for_update().filter(pk=activation.letter_id or 0).first()
        return _failure(
            activation,
            AuditAction.ESPACE_ACTIVATION_COMPLETE,
            account=account,
            letter=letter,
            key=key,
            factor="activation_otp",
            reason="wrong_code",
            client_address=client_address,
        )
    pair_success(LoginThrottle.Scope.ACTIVATION_PAIR, key, client_address)
    now = timezone.now()
    account = PatientAccount.objects.select_for_update().get(pk=account.pk)
    letter = (
        PatientLetter.objects.select_for_update().get(pk=activation.letter_id)
        if activation.letter_id is not None
        else None
    )
    activation.completed_at = now
    activation.save()
    refusal = _completion_refusal(activation, account, letter, now)
    if refusal:
        _trace(
            activation,
            AuditAction.ESPACE_ACTIVATION_COMPLETE,
            outcome=REFUSED,
            client_address=client_address,
            reason=refusal,
        )
        return StepOutcome(
            ok=False,
            message=str(_CERTIFICATE_REFUSALS.get(refusal, "")) or gettext(WRONG_ACTIVATION),
        )
    if letter is not None:
        letter.used_at = now
        letter.save(update_fields=["used_at"])
    if activation.certificate_pem:
        verified = certificates.certificate_verify(activation.certificate_pem)
        PatientCertificate.objects.create(
            account=account,
            subject=verified.subject[:500],
            issuer=verified.issuer[:500],
            serial=verified.serial[:64],
            fingerprint_sha256=verified.fingerprint_sha256,
            not_after=verified.not_after,
            bound_at=now,
        )
    user = User.objects.select_for_update().get(pk=account.user_id)
    user.password = activation.password_hash
    user.is_active = True
    if activation.channel == "email":
        user.email = activation.channel_address
    user.save(update_fields=["password", "is_active", "email"])
    EmailDevice.objects.filter(user=user).delete()
    SmsDevice.objects.filter(user=user).delete()
    if activation.channel == "sms":
        SmsDevice.objects.create(user=user, name="SMS", number=activation.channel_address, confirmed=True)
        account.mobile = activation.channel_address
    else:
        EmailDevice.objects.create(user=user, name="E-mail", email=activation.channel_address, confirmed=True)
        account.email = activation.channel_address
    account.state = PatientAccount.State.ACTIVE
    account.activated_at = now
    account.save()
    activation.account = account
    _trace(
        activation,
        AuditAction.ESPACE_ACTIVATION_COMPLETE,
        client_address=client_address,
        channel=activation.channel,
        letter=letter.pk if letter is not None else None,
        factor="certificate" if activation.certificate_pem else "letter",
    )
    return StepOutcome(ok=True)


def _completion_refusal(
    activation: PatientActivation,
    account: PatientAccount,
    letter: PatientLetter | None,
    now: datetime.datetime,
) -> str:
    """Why the last step may not activate the account after all ("" when it may): the letter
    used since, the account suspended, or — by certificate — activated meanwhile, the
    certificate revoked or bound to another account since step 1."""
    if account.state == PatientAccount.State.SUSPENDED:
        return "account_suspended"
    if letter is not None:
        return "" if letter.is_usable(now) else "letter_not_usable"
    if account.state == PatientAccount.State.ACTIVE:
        return "already_active"
    try:
        verified = certificates.certificate_verify(activation.certificate_pem)
    except certificates.CertificateRefused as exc:
        return f"certificate_{exc.reason}"
    if PatientCertificate.objects.filter(fingerprint_sha256=verified.fingerprint_sha256).exists():
        return "bound_elsewhere"
    return ""
