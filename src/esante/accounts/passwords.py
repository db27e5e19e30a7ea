"""Choosing a new password after "Mot de passe oublié" (guide: "needs the certificate or a new
activation letter").

A forgotten password is replaced without the old one only in a session that logged in with the
LuxTrust certificate bound to the account: the certificate is the strong factor, so it stands in
for the password. A session opened with matricule, password and code is refused: whoever holds
that session (a borrowed, unlocked workstation) must not be able to take the account over by
changing its password. Without the certificate, the way back is a new activation letter.

Kept out of ``services`` (already past the size where a module should grow), with the same rules:
keyword-only, one transaction ending with the audit event, refusals committed with their trace.
"""

import datetime
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext, gettext_noop

from esante.audit.catalogue import AuditAction
from esante.audit.models import AuditEvent

from .models import Certificate, Professional, User
from .notices import audit_locks
from .throttling import account_failure, account_lock_check, lock_message
from .tracing import account_trace

# How the session logged in, recorded in the session at login (``views.session._complete_login``).
LOGIN_CERTIFICATE = "certificate"
LOGIN_PASSWORD_OTP = "password+otp"  # noqa: S105 (the name of a login method, not a secret)

CERTIFICATE_NEEDED = gettext_noop(
    "Pour choisir un nouveau mot de passe, connectez-vous avec votre produit LuxTrust "
    "(« Connexion »). Sans produit LuxTrust, demandez un nouveau courrier d'activation au helpdesk."
)


@dataclass
class PasswordOutcome:
    """What a password change decided; ``message`` (request's language) when ``ok`` is False."""

    ok: bool
    message: str = ""
    user: Any = None
    locked_until: datetime.datetime | None = None


def session_may_change_password(login: dict[str, str] | None) -> bool:
    """Whether a session's recorded login lets it choose a password without the current one:
    only a certificate login (checked again, against the database, when the change is made)."""
    if not login:
        return False
    return login.get("method") == LOGIN_CERTIFICATE and bool(login.get("fingerprint"))


@transaction.atomic
def password_change_by_certificate(
    *, user: Any, password: str, login: dict[str, str] | None, client_address: str | None
) -> PasswordOutcome:
    """Replaces the password of ``user``, whose session logged in with a bound certificate.

    ``login`` is what the session recorded at login: the method and, for a certificate, its
    SHA-256 fingerprint. Refused (and traced, the refusal committed) when the account is locked,
    when the session did not log in with a certificate, or when that certificate is no longer
    bound to the user's active professional account; such a refusal counts towards the account
    lock. Raises ``ValidationError`` (key ``password1``, Django's validators) for a weak password;
    nothing is written then.
    """
    key = user.get_username()
    lock = account_lock_check(key)  # the account's row stays locked until the end: one change at a time
    if lock is not None:
        account_trace(
            AuditAction.PASSWORD_CHANGE, key=key, user=user, client_address=client_address, reason="locked"
        )
        return PasswordOutcome(ok=False, message=lock_message(lock), locked_until=lock)
    fingerprint = (login or {}).get("fingerprint", "")
    bound = (
        session_may_change_password(login)
        and Certificate.objects.filter(
            fingerprint_sha256=fingerprint,
            professional__user=user,
            professional__state=Professional.State.ACTIVE,
            professional__user__is_active=True,
        ).exists()
    )
    if not bound:
        reason = "not_certificate_login" if not session_may_change_password(login) else "certificate_unbound"
        new_lock = account_failure(key)
        account_trace(
            AuditAction.PASSWORD_CHANGE,
            key=key,
            user=user,
            client_address=client_address,
            reason=reason,
            details={"login": (login or {}).get("method", "")},
        )
        audit_locks(
            user=user, key=key, account_lock=new_lock, address_lock=None, client_address=client_address
        )
        if new_lock is not None:
            return PasswordOutcome(ok=False, message=lock_message(new_lock), locked_until=new_lock)
        return PasswordOutcome(ok=False, message=gettext(CERTIFICATE_NEEDED))
    account = User.objects.select_for_update().get(pk=user.pk)
    try:
        validate_password(password, user=account)
    except ValidationError as exc:
        raise ValidationError({"password1": exc.messages}) from exc
    account.set_password(password)
    account.save(update_fields=["password"])
    account_trace(
        AuditAction.PASSWORD_CHANGE,
        key=key,
        user=account,
        client_address=client_address,
        outcome=AuditEvent.Outcome.SUCCESS,
        details={"factor": LOGIN_CERTIFICATE, "certificate": fingerprint},
    )
    return PasswordOutcome(ok=True, user=account)
