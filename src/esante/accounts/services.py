"""Writes of the accounts app, agency side: registering professionals, activation letters,
account states and unlocks (the logins are ``login``, the activation wizard ``activation``).

Every service is keyword-only and runs in one transaction that ends with its audit event. A
refused attempt (wrong code, wrong password, lock) is itself an action: its counters and its audit
event are committed together, and the caller gets an outcome saying what to show — so a refusal
is never rolled back with the request.
"""

import datetime
import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import formats, timezone
from django.utils.translation import gettext, gettext_noop

from esante.audit.catalogue import AuditAction
from esante.audit.models import AuditEvent
from esante.audit.services import audit_record
from esante.patients.matricule import validate_professional_matricule

from .codes import (
    activation_code_digest,
    activation_code_new,
)
from .models import (
    ActivationLetter,
    LoginThrottle,
    Profession,
    Professional,
    User,
)
from .throttling import (
    KNOWN_NETWORK_DAYS,
    account_hold,
    account_pairs_reset,
)

REFUSED = AuditEvent.Outcome.REFUSED
FAILURE = AuditEvent.Outcome.FAILURE

# French msgids, translated when an outcome is built (``gettext``): outcomes are built during the
# request, so their messages are in its language. Agency-side errors (CLI, admin) stay French.
WRONG_ACTIVATION = gettext_noop("Le matricule ou le code d'activation est incorrect.")
WRONG_LOGIN = gettext_noop("Matricule ou mot de passe incorrect.")
SUSPENDED = gettext_noop("Votre compte est suspendu. Contactez le helpdesk.")
NO_DEVICE = gettext_noop("Aucun moyen de recevoir un code n'est associé à ce compte.")
_MOBILE = re.compile(r"^\+?[0-9]{8,15}$")


def _now() -> datetime.datetime:
    return timezone.now()


def resend_message(ready: datetime.datetime) -> str:
    """When a new one-time code may be sent (Luxembourg time), in the active language."""
    return gettext("Un nouveau code pourra être envoyé à %(time)s.") % {
        "time": formats.time_format(timezone.localtime(ready), "H:i:s")
    }


def mobile_normalise(value: str) -> str:
    number = "".join(ch for ch in value if ch not in " .-/()")
    if number.startswith("00"):
        number = "+" + number[2:]
    if not _MOBILE.match(number):
        raise ValidationError(
            "Le numéro de téléphone portable n'est pas valide (exemple : +352 621 123 456)."
        )
    return number


# --- agency side ---------------------------------------------------------------------------------


@transaction.atomic
def professional_register(
    *,
    matricule: str,
    profession: str,
    last_name: str,
    first_name: str,
    email: str,
    mobile: str,
    organisation: str = "",
    actor_label: str = "system:cli",
) -> Professional:
    """Registers a professional of the national register (state ``registered``, no login yet).

    Raises ``ValidationError`` (French messages) for an invalid or already registered matricule,
    an unknown profession, an invalid e-mail or mobile number, or a missing name.
    """
    errors: dict[str, list[str]] = {}
    try:
        matricule = validate_professional_matricule(matricule)
    except ValidationError as exc:
        errors["matricule"] = exc.messages
    if profession not in Profession.values:
        choices = ", ".join(Profession.values)
        errors["profession"] = [f"Profession inconnue « {profession} » (valeurs possibles : {choices})."]
    if not last_name.strip():
        errors["last_name"] = ["Le nom est obligatoire."]
    if not first_name.strip():
        errors["first_name"] = ["Le prénom est obligatoire."]
    try:
        validate_email(email)
    except ValidationError:
        errors["email"] = ["L'adresse e-mail n'est pas valide."]
    try:
        mobile = mobile_normalise(mobile)
    except ValidationError as exc:
        errors["mobile"] = exc.messages
    if "matricule" not in errors and (
        Professional.objects.filter(matricule=matricule).exists()
        or User.objects.filter(username=matricule).exists()
    ):
        errors["matricule"] = [f"Le matricule {matricule} est déjà enregistré."]
    if errors:
        raise ValidationError(errors)
    user = User(username=matricule, first_name=first_name.strip(), last_name=last_name.strip(), email=email)
    user.is_active = False  # nothing is active before the last activation step
    user.set_unusable_password()
    user.save()
    professional = Professional.objects.create(
        user=user,
        matricule=matricule,
        profession=profession,
        last_name=last_name.strip(),
        first_name=first_name.strip(),
        email=email,
        mobile=mobile,
        organisation=organisation.strip(),
    )
    audit_record(
        action=AuditAction.PROFESSIONAL_REGISTER,
        actor_label=actor_label,
        object_type="professional",
        object_id=professional.pk,
        details={"profession": profession},
    )
    return professional


@transaction.atomic
def activation_letter_issue(
    *, professional: Professional, actor_label: str = "system:cli"
) -> tuple[ActivationLetter, str]:
    """Issues a new activation letter; returns it with the code to print (never stored in clear).

    Revokes every earlier letter of the professional that is still open. Refuses a suspended
    professional (``ValidationError``).
    """
    professional = Professional.objects.select_for_update().get(pk=professional.pk)
    if professional.state == Professional.State.SUSPENDED:
        raise ValidationError("Ce professionnel est suspendu : réactivez-le avant d'émettre un courrier.")
    now = _now()
    revoked = ActivationLetter.objects.filter(
        professional=professional, used_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=now)
    code = activation_code_new()
    letter = ActivationLetter.objects.create(
        professional=professional,
        code_digest=activation_code_digest(code),
        issued_at=now,
        expires_at=now + datetime.timedelta(days=settings.ESANTE_ACTIVATION_LETTER_DAYS),
        issued_by=actor_label,
    )
    audit_record(
        action=AuditAction.ACTIVATION_LETTER_ISSUE,
        actor_label=actor_label,
        object_type="activation_letter",
        object_id=letter.pk,
        details={"professional": professional.pk, "revoked_letters": revoked},
    )
    return letter, code


@transaction.atomic
def login_unlock(*, professional: Professional, actor_label: str) -> None:
    """Lifts the lock on the professional's account (its failures and its count of locks, so the
    next lock is short again) and every network's delay on it, at login and at activation, before
    they end (helpdesk). A network's own limit is lifted apart (``login_throttle_lift``)."""
    key = professional.matricule
    # The account's row first, then its pairs: the order every attempt takes them in.
    account_hold(key)
    LoginThrottle.objects.filter(scope=LoginThrottle.Scope.ACCOUNT, key=key).update(
        failures=0, lock_count=0, locked_until=None
    )
    delays = account_pairs_reset(LoginThrottle.Scope.PAIR, key)
    delays += account_pairs_reset(LoginThrottle.Scope.ACTIVATION_PAIR, key)
    audit_record(
        action=AuditAction.LOGIN_UNLOCK,
        actor_label=actor_label,
        object_type="professional",
        object_id=professional.pk,
        details={"delays_lifted": delays},
    )


@transaction.atomic
def login_throttle_lift(*, throttle: LoginThrottle, actor_label: str) -> None:
    """Lifts one counter before it ends (operator): a client network's limit (``address``,
    ``activation``), or one pair's delay. Account locks are lifted with ``login_unlock``. Refuses
    an account row (``ValidationError``)."""
    if throttle.scope == LoginThrottle.Scope.ACCOUNT:
        raise ValidationError("Un compte se débloque avec « Lever le blocage de connexion ».")
    LoginThrottle.objects.filter(pk=throttle.pk).update(
        failures=0, lock_count=0, locked_until=None, window_started_at=None
    )
    audit_record(
        action=AuditAction.THROTTLE_LIFT,
        actor_label=actor_label,
        object_type=throttle.scope,
        object_id=throttle.key,
        details={
            "failures": throttle.failures,
            "locked_until": throttle.locked_until.isoformat() if throttle.locked_until else None,
        },
    )


@transaction.atomic
def login_throttles_purge(*, older_than_days: int = 30, actor_label: str = "system:cli") -> int:
    """Deletes the counters nobody needs any more: not touched for ``older_than_days``, no lock
    or delay running, no success of the pair within ``KNOWN_NETWORK_DAYS`` (a known network stays
    known). Returns how many; traced (``accounts.throttle.purge``). An account's failures not
    touched for that long start again from zero: a lock counts consecutive failures, not old ones."""
    now = _now()
    purged, _ = (
        LoginThrottle.objects.filter(updated_at__lt=now - datetime.timedelta(days=older_than_days))
        .exclude(locked_until__gt=now)
        .exclude(succeeded_at__gte=now - datetime.timedelta(days=KNOWN_NETWORK_DAYS))
        .delete()
    )
    audit_record(
        action=AuditAction.THROTTLE_PURGE,
        actor_label=actor_label,
        object_type="login_throttle",
        details={"deleted": purged, "older_than_days": older_than_days},
    )
    return purged


@transaction.atomic
def professional_set_state(*, professional: Professional, state: str, actor_label: str) -> Professional:
    """Suspends (``suspended``) or reactivates (``active``) a professional's account."""
    if state not in (Professional.State.SUSPENDED, Professional.State.ACTIVE):
        raise ValidationError("État demandé invalide.")
    professional = Professional.objects.select_for_update().get(pk=professional.pk)
    if state == Professional.State.ACTIVE and not professional.user.has_usable_password():
        raise ValidationError("Ce compte n'a jamais été activé : émettez un courrier d'activation.")
    previous = professional.state
    professional.state = state
    professional.save(update_fields=["state"])
    User.objects.filter(pk=professional.user_id).update(is_active=state == Professional.State.ACTIVE)
    audit_record(
        action=AuditAction.PROFESSIONAL_STATE,
        actor_label=actor_label,
        object_type="professional",
        object_id=professional.pk,
        details={"from": previous, "to": state},
    )
    return professional
