"""The certificate login (LuxTrust): one step, the certificate presented to the TLS origin."""

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from esante.audit.catalogue import AuditAction
from esante.audit.services import audit_record

from .. import certificates
from ..models import (
    Certificate,
    LoginThrottle,
    Professional,
    User,
)
from ..services import FAILURE, REFUSED
from ..throttling import (
    account_success,
    pair_success,
)
from .outcome import LoginOutcome


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
            action=AuditAction.LOGIN_CERTIFICATE,
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
            action=AuditAction.LOGIN_CERTIFICATE,
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
    User.objects.filter(pk=user.pk).update(last_login=timezone.now())
    audit_record(
        action=AuditAction.LOGIN_CERTIFICATE,
        actor=user,
        object_type="certificate",
        object_id=verified.fingerprint_sha256,
        client_address=client_address,
        details={"factor": "certificate"},
    )
    # The session records which certificate logged in: it alone may replace a forgotten password.
    return LoginOutcome(ok=True, user=user, extra={"fingerprint": verified.fingerprint_sha256})
