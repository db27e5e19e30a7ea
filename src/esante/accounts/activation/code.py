"""Step 2: the matricule and the activation code of the letter."""

import datetime

from django.db import transaction
from django.utils.translation import gettext

from esante.patients.matricule import compact

from ..codes import activation_code_digest, digests_match
from ..models import (
    ActivationLetter,
    ActivationWizard,
    LoginThrottle,
    Professional,
)
from ..services import WRONG_ACTIVATION
from ..throttling import (
    account_hold,
    delay_message,
    lock_message,
    pair_delay_check,
    pair_success,
    throttle_locked_until,
)
from .certificate import certificate_names
from .wizard import (
    FAILURE,
    REFUSED,
    Step,
    StepOutcome,
    activation_failure,
    activation_failure_trace,
    current_time,
    trace,
    wizard_locked,
)


def _current_letter(professional: Professional | None) -> ActivationLetter | None:
    """The professional's latest letter still to use (locked), or None for an unknown matricule
    or a suspended professional."""
    if professional is None or professional.state == Professional.State.SUSPENDED:
        return None
    return (
        ActivationLetter.objects.select_for_update()
        .filter(professional=professional, used_at__isnull=True, revoked_at__isnull=True)
        .order_by("-issued_at")
        .first()
    )


def _letter_refusal(letter: ActivationLetter | None, code: str, now: datetime.datetime) -> str:
    """Why the activation code does not open this letter ("" when it does): no letter, a blocked
    or expired letter, a wrong code (compared in constant time)."""
    if letter is None:
        return "unknown_matricule_or_no_letter"
    if not letter.is_usable(now):
        return "letter_blocked" if letter.failed_attempts >= letter.max_failed_attempts else "letter_expired"
    if not digests_match(letter.code_digest, activation_code_digest(code)):
        return "wrong_code"
    return ""


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
    wizard = wizard_locked(wizard, Step.CODE)
    now = current_time()
    key = compact(matricule)[:13]
    if key:
        account_hold(key)
    delayed = pair_delay_check(LoginThrottle.Scope.ACTIVATION_PAIR, key, client_address) if key else None
    if delayed is not None:
        trace(wizard, "code", outcome=REFUSED, client_address=client_address, reason="delayed", account=key)
        return StepOutcome(ok=False, message=delay_message(delayed))
    address_lock = throttle_locked_until(
        LoginThrottle.Scope.ACTIVATION,
        client_address,
        account=key,
        pair_scope=LoginThrottle.Scope.ACTIVATION_PAIR,
    )
    if address_lock is not None:
        trace(wizard, "code", outcome=REFUSED, client_address=client_address, reason="address_locked")
        return StepOutcome(ok=False, message=lock_message(address_lock))
    professional = Professional.objects.select_related("user").filter(matricule=key).first() if key else None
    letter = _current_letter(professional)
    reason = _letter_refusal(letter, code, now)
    if reason:
        counted = activation_failure(
            wizard=wizard,
            professional=professional,
            letter=letter if reason == "wrong_code" else None,
            account=key,
            factor="activation_code",
            client_address=client_address,
        )
        trace(
            wizard,
            "code",
            outcome=FAILURE,
            client_address=client_address,
            reason=reason,
            letter=letter.pk if letter else None,
        )
        activation_failure_trace(
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
    if wizard.certificate_pem and not certificate_names(wizard, professional, client_address=client_address):
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
    trace(wizard, "code", client_address=client_address, letter=letter.pk)
    return StepOutcome(ok=True)
