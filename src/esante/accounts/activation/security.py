"""Steps 3 and 4: the professional's details, the security factor (SMS or e-mail code, password)
and its verification; then the activation itself, with the letter consumed."""

import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils.translation import gettext
from django_otp.plugins.otp_email.models import EmailDevice

from esante.audit.catalogue import AuditAction

from .. import certificates
from ..codes import one_time_code_digest, one_time_code_new
from ..delivery import DeliveryError, code_deliver
from ..models import (
    ActivationLetter,
    ActivationWizard,
    Certificate,
    LoginThrottle,
    Professional,
    SmsDevice,
    User,
)
from ..otp import OtpCheck, otp_verify
from ..services import WRONG_ACTIVATION, mobile_normalise, resend_message
from ..throttling import (
    account_hold,
    delay_message,
    lock_message,
    pair_delay_check,
    pair_success,
    throttle_locked_until,
)
from .wizard import (
    FAILURE,
    REFUSED,
    Step,
    StepOutcome,
    activation_failure,
    activation_failure_trace,
    current_time,
    trace,
    wizard_event,
    wizard_locked,
)


@transaction.atomic
def wizard_information(*, wizard: ActivationWizard, client_address: str | None) -> StepOutcome:
    """Step 3: the professional has checked the register's data."""
    wizard = wizard_locked(wizard, Step.INFORMATION)
    wizard.step = Step.SECURITY
    wizard.save()
    trace(wizard, "information", client_address=client_address)
    return StepOutcome(ok=True)


def security_choice_check(*, password: str, channel: str, address: str, user: Any) -> str:
    """The password (Django's validators, against ``user``) and where the codes will go; returns
    the address normalised, or raises ``ValidationError`` keyed by the form's fields (shared by
    the professionals' step 4 and the patients' activation)."""
    errors: dict[str, list[str]] = {}
    try:
        validate_password(password, user=user)
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
    return address


@transaction.atomic
def wizard_security_choose(
    *, wizard: ActivationWizard, password: str, channel: str, address: str, client_address: str | None
) -> StepOutcome:
    """Step 4a: password (Django's validators) and channel; sends a code to check the channel.

    Raises ``ValidationError`` (keyed by form field) for a weak password or an invalid
    number/address. A new code is
    sent at most once per ``ESANTE_OTP_RESEND_SECONDS``.
    """
    wizard = wizard_locked(wizard, Step.SECURITY)
    professional = wizard.professional
    assert professional is not None  # noqa: S101 - set at step 2
    address = security_choice_check(
        password=password, channel=channel, address=address, user=professional.user
    )
    now = current_time()
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
        wizard_event(
            wizard,
            AuditAction.OTP_SEND,
            actor=professional.user,
            outcome=FAILURE,
            client_address=client_address,
            details={"channel": channel, "error": str(exc)[:200]},
        )
        return StepOutcome(
            ok=False, message=gettext("Le code n'a pas pu être envoyé. Vérifiez le numéro ou l'adresse.")
        )
    wizard_event(
        wizard,
        AuditAction.OTP_SEND,
        actor=professional.user,
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
    wizard = wizard_locked(wizard, Step.SECURITY)
    professional = wizard.professional
    assert professional is not None  # noqa: S101 - set at step 2
    key = professional.matricule
    account_hold(key)
    delayed = pair_delay_check(LoginThrottle.Scope.ACTIVATION_PAIR, key, client_address)
    if delayed is not None:
        trace(wizard, "security", outcome=REFUSED, client_address=client_address, reason="delayed")
        return StepOutcome(ok=False, message=delay_message(delayed))
    address_lock = throttle_locked_until(
        LoginThrottle.Scope.ACTIVATION,
        client_address,
        account=key,
        pair_scope=LoginThrottle.Scope.ACTIVATION_PAIR,
    )
    if address_lock is not None:
        trace(wizard, "security", outcome=REFUSED, client_address=client_address, reason="address_locked")
        return StepOutcome(ok=False, message=lock_message(address_lock))
    verdict = otp_verify(
        scope=f"activation:{wizard.pk}",
        digest=wizard.code_digest,
        valid_until=wizard.code_valid_until,
        failures=wizard.code_failed_attempts,
        code=code,
    )
    if verdict.result is OtpCheck.EXPIRED:
        trace(wizard, "security", outcome=FAILURE, client_address=client_address, reason="no_live_code")
        return StepOutcome(
            ok=False,
            message=gettext(
                "Ce code n'est plus valable. Cliquez sur « Valider » pour en recevoir un nouveau."
            ),
        )
    if verdict.result is OtpCheck.WRONG:
        wizard.code_failed_attempts = verdict.failures
        if verdict.spent:
            wizard.code_digest, wizard.code_valid_until = "", None
        wizard.save()
        letter = (
            ActivationLetter.objects.select_for_update().filter(pk=wizard.letter_id).first()
            if wizard.letter_id is not None
            else None
        )
        counted = activation_failure(
            wizard=wizard,
            professional=professional,
            letter=letter,
            account=key,
            factor="activation_otp",
            client_address=client_address,
        )
        trace(wizard, "security", outcome=FAILURE, client_address=client_address, reason="wrong_code")
        activation_failure_trace(
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
    now = current_time()
    assert wizard.professional_id is not None and wizard.letter_id is not None  # noqa: S101 - set at step 2
    professional = Professional.objects.select_for_update().get(pk=wizard.professional_id)
    letter = ActivationLetter.objects.select_for_update().get(pk=wizard.letter_id)
    if not letter.is_usable(now) or professional.state == Professional.State.SUSPENDED:
        wizard.completed_at = now
        wizard.save()
        trace(wizard, "complete", outcome=REFUSED, client_address=client_address, reason="letter_not_usable")
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
    trace(wizard, "complete", client_address=client_address, channel=wizard.channel, certificate=fingerprint)
    return StepOutcome(ok=True)
