"""Writes of the accounts app: registering professionals, activation letters, the activation
wizard, logins and lockouts.

Every service is keyword-only and runs in one transaction that ends with its audit event. A
refused attempt (wrong code, wrong password, lock) is itself an action: its counters and its audit
event are committed together, and the caller gets an outcome saying what to show — so a refusal
is never rolled back with the request.
"""

import datetime
import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import formats, timezone
from django.utils.translation import gettext, gettext_noop

from esante.audit.models import AuditEvent
from esante.audit.services import audit_record
from esante.patients.matricule import compact, validate_professional_matricule

from . import certificates
from .codes import (
    activation_code_digest,
    activation_code_new,
)
from .delivery import DeliveryError, code_deliver
from .models import (
    ActivationLetter,
    Certificate,
    LoginThrottle,
    Profession,
    Professional,
    User,
)
from .otp import (
    LoginDevice,
    OtpCheck,
    device_address,
    login_device_for,
    otp_check,
    otp_issue,
    resend_available_at,
)
from .throttling import (
    KNOWN_NETWORK_DAYS,
    Delay,
    account_failure,
    account_hold,
    account_lock_check,
    account_lock_message,
    account_pairs_reset,
    account_success,
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
        action="accounts.professional.register",
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
        action="accounts.activation_letter.issue",
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
        action="accounts.login.unlock",
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
        action="accounts.throttle.lift",
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
        action="accounts.throttle.purge",
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
        action="accounts.professional.state",
        actor_label=actor_label,
        object_type="professional",
        object_id=professional.pk,
        details={"from": previous, "to": state},
    )
    return professional


# --- login ---------------------------------------------------------------------------------------


@dataclass
class LoginOutcome:
    """What a login step decided. ``message`` is the text to show when ``ok`` is False, in the
    language active when the step ran (the request's)."""

    ok: bool
    message: str = ""
    user: Any = None
    device: LoginDevice | None = None
    locked_until: datetime.datetime | None = None
    delayed_until: datetime.datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _lock_outcome(until: datetime.datetime, *, account: bool = False) -> LoginOutcome:
    message = account_lock_message(until) if account else lock_message(until)
    return LoginOutcome(ok=False, message=message, locked_until=until)


def _delay_outcome(until: datetime.datetime) -> LoginOutcome:
    """This address must wait before its next try on this account: not a lock of the account."""
    return LoginOutcome(ok=False, message=delay_message(until), delayed_until=until)


def _locked_refusal(
    action: str,
    until: datetime.datetime,
    *,
    client_address: str | None,
    actor: Any = None,
    actor_label: str = "",
    account: str = "",
    reason: str = "locked",
    account_locked: bool = False,
) -> LoginOutcome:
    """A login step refused without evaluating it: the account is locked (``reason="locked"``),
    the address is blocked, or this address must wait on this account (``"delayed"``). Traced,
    with the message saying when to retry."""
    audit_record(
        action=action,
        outcome=REFUSED,
        actor=actor,
        actor_label=actor_label,
        object_type="account" if account else "",
        object_id=account,
        client_address=client_address,
        details={"reason": reason},
    )
    if reason == "delayed":
        return _delay_outcome(until)
    return _lock_outcome(until, account=account_locked)


def _professional_of(user: Any) -> Professional | None:
    return Professional.objects.filter(user=user).first()


def _notice_address(user: Any) -> str:
    """Where to tell the owner of ``user`` that the account is attacked: the professional e-mail
    of the register (an operator: the user's e-mail)."""
    professional = _professional_of(user)
    return professional.email if professional is not None else (user.email or "")


def _login_failure(
    *, user: Any, key: str, factor: str, client_address: str | None, address_scope: bool
) -> tuple[datetime.datetime | None, Delay | None, datetime.datetime | None]:
    """Counts a failed login step (wrong password or code) on the account, on the pair (account,
    network) and, for the password, on the network. Returns (account lock, delay, network delay)
    imposed by this failure. Decides to tell the professional when it is the pair's first delay
    or it locks the account (the mail goes after the commit).

    Writes no audit event: every counter row is locked before the chain head (the lock order of
    ``throttling``); the caller traces the attempt, then ``_failure_trace``."""
    account_lock = account_failure(key) if key else None
    delay = pair_failure(LoginThrottle.Scope.PAIR, key, client_address) if key else None
    address_lock = address_failure(LoginThrottle.Scope.ADDRESS, client_address) if address_scope else None
    if user is not None and (account_lock is not None or (delay is not None and delay.first)):
        attack_notify(
            account=key,
            email=_notice_address(user),
            factor=factor,
            actor=user,
            client_address=client_address,
            locked_until=account_lock,
        )
    return account_lock, delay, address_lock


def _failure_trace(
    *,
    user: Any,
    key: str,
    client_address: str | None,
    counted: tuple[datetime.datetime | None, Delay | None, datetime.datetime | None],
) -> None:
    """Traces the locks and the delay ``_login_failure`` has just imposed."""
    account_lock, delay, address_lock = counted
    audit_locks(
        user=user,
        key=key,
        account_lock=account_lock,
        address_lock=address_lock,
        client_address=client_address,
        delay=delay,
    )


@transaction.atomic
def login_password(*, matricule: str, password: str, client_address: str | None) -> LoginOutcome:
    """First factor: matricule and password. On success sends a code to the verified channel.

    Refused (and traced) when the account is locked, this network must wait before its next try
    on this account, or the network is delayed (unless this account logged in from it before);
    when the credentials are wrong (one message for unknown matricule and wrong password, and the
    same counting), the account is not active, or the code cannot be sent. Wrong credentials count
    on the account and network pair (delays after three), on the account (a lock only after
    ``ESANTE_ACCOUNT_LOCK_AFTER_FAILURES``) and on the network (coarse rate limit); the
    professional is told by e-mail (after the commit).

    The account's counter row, then the pair's, stay locked from the checks to the end of the
    transaction, so concurrent attempts on one account are evaluated one after the other and the
    delay or lock stops them after the configured number (the row lock is held for one password
    check). Every counter is written before the audit events, which come last.
    """
    key = compact(matricule)[:13]
    account_lock = account_lock_check(key) if key else None
    if account_lock is not None:
        return _locked_refusal(
            "accounts.login.password",
            account_lock,
            client_address=client_address,
            actor_label=key,
            account=key,
            account_locked=True,
        )
    delayed = pair_delay_check(LoginThrottle.Scope.PAIR, key, client_address) if key else None
    if delayed is not None:
        return _locked_refusal(
            "accounts.login.password",
            delayed,
            client_address=client_address,
            actor_label=key,
            account=key,
            reason="delayed",
        )
    address_lock = throttle_locked_until(
        LoginThrottle.Scope.ADDRESS, client_address, account=key, pair_scope=LoginThrottle.Scope.PAIR
    )
    if address_lock is not None:
        return _locked_refusal(
            "accounts.login.password",
            address_lock,
            client_address=client_address,
            actor_label=key,
            account=key,
            reason="address_delayed",
        )
    user = authenticate(username=key, password=password) if key else None
    professional = _professional_of(user) if user is not None else None
    if user is None or (professional is not None and professional.state != Professional.State.ACTIVE):
        reason = "bad_credentials" if user is None else "suspended"
        # Whose account it is, when the matricule is known: the owner is told of the attack.
        owner = user or (User.objects.filter(username=key).first() if key else None)
        counted = _login_failure(
            user=owner, key=key, factor="password", client_address=client_address, address_scope=True
        )
        audit_record(
            action="accounts.login.password",
            outcome=FAILURE,
            actor=user,
            actor_label="" if user else key,
            object_type="account",
            object_id=key,
            client_address=client_address,
            details={"reason": reason},
        )
        _failure_trace(user=owner, key=key, client_address=client_address, counted=counted)
        new_account_lock, new_delay, new_address_lock = counted
        if new_account_lock or new_address_lock:
            until = max(d for d in (new_account_lock, new_address_lock) if d is not None)
            return _lock_outcome(until, account=until == new_account_lock)
        if new_delay is not None:
            return _delay_outcome(new_delay.until)
        if reason == "suspended":
            return LoginOutcome(ok=False, message=gettext(SUSPENDED))
        return LoginOutcome(ok=False, message=gettext(WRONG_LOGIN))
    device = login_device_for(user)
    if device is None:
        audit_record(
            action="accounts.login.password",
            outcome=REFUSED,
            actor=user,
            object_type="account",
            object_id=key,
            client_address=client_address,
            details={"reason": "no_device"},
        )
        return LoginOutcome(ok=False, message=gettext(NO_DEVICE))
    sent = _send_login_code(device=device, user=user, client_address=client_address)
    audit_record(
        action="accounts.login.password",
        actor=user,
        object_type="account",
        object_id=key,
        client_address=client_address,
    )
    if not sent.ok:
        return sent
    return LoginOutcome(ok=True, user=user, device=device)


def _send_login_code(*, device: LoginDevice, user: Any, client_address: str | None) -> LoginOutcome:
    channel, address = device_address(device)
    code = otp_issue(device)
    try:
        code_deliver(channel=channel, address=address, code=code)
    except DeliveryError as exc:
        audit_record(
            action="accounts.otp.send",
            outcome=FAILURE,
            actor=user,
            object_type="otp_device",
            object_id=device.persistent_id,
            client_address=client_address,
            details={"channel": channel, "error": str(exc)[:200]},
        )
        return LoginOutcome(ok=False, message=gettext("Le code n'a pas pu être envoyé. Réessayez plus tard."))
    audit_record(
        action="accounts.otp.send",
        actor=user,
        object_type="otp_device",
        object_id=device.persistent_id,
        client_address=client_address,
        details={"channel": channel},
    )
    return LoginOutcome(ok=True, user=user, device=device)


@transaction.atomic
def login_code_resend(*, user: Any, client_address: str | None) -> LoginOutcome:
    """Sends a new code to the user's device, at most once per ``ESANTE_OTP_RESEND_SECONDS``."""
    device = login_device_for(user)
    if device is None:
        return LoginOutcome(ok=False, message=gettext(NO_DEVICE))
    ready = resend_available_at(device)
    if ready is not None:
        audit_record(
            action="accounts.otp.send",
            outcome=REFUSED,
            actor=user,
            object_type="otp_device",
            object_id=device.persistent_id,
            client_address=client_address,
            details={"reason": "too_soon"},
        )
        return LoginOutcome(ok=False, message=resend_message(ready))
    return _send_login_code(device=device, user=user, client_address=client_address)


@transaction.atomic
def login_code(*, user: Any, code: str, client_address: str | None) -> LoginOutcome:
    """Second factor: the one-time code. Locks the account's counter row, then the pair's, then
    the device row, while checking it: concurrent codes are evaluated one after the other.

    A wrong code counts like a wrong password on the account and on the (account, address) pair
    (delays after three, an account lock far later, the professional told by e-mail); three wrong
    codes kill the code. A delay keeps the pending login (``delayed_until``); a lock ends it
    (``locked_until``).
    """
    key = user.get_username()
    # Locked before the device row, as in login_password: concurrent codes queue on the account.
    account_lock = account_lock_check(key)
    if account_lock is not None:
        return _locked_refusal(
            "accounts.login.code",
            account_lock,
            client_address=client_address,
            actor=user,
            account=key,
            account_locked=True,
        )
    delayed = pair_delay_check(LoginThrottle.Scope.PAIR, key, client_address)
    if delayed is not None:
        return _locked_refusal(
            "accounts.login.code",
            delayed,
            client_address=client_address,
            actor=user,
            account=key,
            reason="delayed",
        )
    professional = _professional_of(user)
    device = login_device_for(user)
    if (
        device is None
        or not user.is_active
        or (professional and professional.state != Professional.State.ACTIVE)
    ):
        audit_record(
            action="accounts.login.code",
            outcome=REFUSED,
            actor=user,
            object_type="account",
            object_id=key,
            client_address=client_address,
            details={"reason": "inactive"},
        )
        return LoginOutcome(ok=False, message=gettext(SUSPENDED))
    result = otp_check(device, code)
    if result is OtpCheck.ACCEPTED:
        account_success(key)
        pair_success(LoginThrottle.Scope.PAIR, key, client_address)
        User.objects.filter(pk=user.pk).update(last_login=_now())
        audit_record(
            action="accounts.login.code",
            actor=user,
            object_type="otp_device",
            object_id=device.persistent_id,
            client_address=client_address,
            details={"factor": "password+otp"},
        )
        return LoginOutcome(ok=True, user=user, device=device)
    counted = _login_failure(
        user=user, key=key, factor="otp", client_address=client_address, address_scope=False
    )
    audit_record(
        action="accounts.login.code",
        outcome=FAILURE,
        actor=user,
        object_type="otp_device",
        object_id=device.persistent_id,
        client_address=client_address,
        details={"reason": result.value},
    )
    _failure_trace(user=user, key=key, client_address=client_address, counted=counted)
    new_lock, new_delay, _ = counted
    if new_lock is not None:
        return _lock_outcome(new_lock, account=True)
    if new_delay is not None:
        return _delay_outcome(new_delay.until)
    if result is OtpCheck.EXPIRED or device.token is None:
        return LoginOutcome(
            ok=False, message=gettext("Ce code n'est plus valable. Demandez un nouveau code.")
        )
    return LoginOutcome(ok=False, message=gettext("Le code saisi est incorrect."))


@transaction.atomic
def login_certificate(*, certificate_pem: str, client_address: str | None) -> LoginOutcome:
    """Login with a LuxTrust certificate bound at activation (verified again at each login).

    Deliberately refused by none of the failure counters — the account's lock, a network's
    delay on the account, the network's own limit — and counted on none: they count guesses of
    the password and of codes, and a certificate cannot be guessed (the TLS verification of its
    private key is the factor), so an attacker locking the password login, or spraying
    matricules from a shared NAT address, never locks the professional out. A refused
    certificate is traced. A certificate login, like a full password and code login, ends the
    account's run of consecutive failures (``account_success``) and makes the client's network
    known for the account (``pair_success``)."""
    try:
        verified = certificates.certificate_verify(certificate_pem)
    except certificates.CertificateRefused as exc:
        audit_record(
            action="accounts.login.certificate",
            outcome=FAILURE,
            actor_label="anonymous",
            client_address=client_address,
            details={"reason": exc.reason},
        )
        return LoginOutcome(ok=False, message=gettext(exc.message))
    bound = (
        Certificate.objects.select_related("professional__user")
        .filter(fingerprint_sha256=verified.fingerprint_sha256)
        .first()
    )
    if (
        bound is None
        or bound.professional.state != Professional.State.ACTIVE
        or not bound.professional.user.is_active
    ):
        reason = "unbound" if bound is None else "inactive"
        audit_record(
            action="accounts.login.certificate",
            outcome=REFUSED,
            actor=bound.professional.user if bound else None,
            actor_label="" if bound else "anonymous",
            object_type="certificate",
            object_id=verified.fingerprint_sha256[:64],
            client_address=client_address,
            details={"reason": reason},
        )
        message = gettext(
            "Ce certificat n'est associé à aucun compte actif. Activez votre compte ou utilisez "
            "« Matricule, mot de passe et code »."
        )
        return LoginOutcome(ok=False, message=message)
    user = bound.professional.user
    account_success(user.get_username())
    # The professional works from this network: their password logins from it are exempt from
    # its coarse limit, as after a full password and code login.
    pair_success(LoginThrottle.Scope.PAIR, user.get_username(), client_address)
    User.objects.filter(pk=user.pk).update(last_login=_now())
    audit_record(
        action="accounts.login.certificate",
        actor=user,
        object_type="certificate",
        object_id=verified.fingerprint_sha256,
        client_address=client_address,
        details={"factor": "certificate"},
    )
    # The session records which certificate logged in: it alone may replace a forgotten password.
    return LoginOutcome(ok=True, user=user, extra={"fingerprint": verified.fingerprint_sha256})


def logout_record(*, user: Any, client_address: str | None) -> None:
    audit_record(action="accounts.logout", actor=user, client_address=client_address)
