"""A patient's LuxTrust product or eID card: bound once from a logged-in session, then a login
factor by itself — verified again at each login (chain, validity, revocation) by the
professionals' code (``esante.accounts.certificates``), presented on the same certificate
origin (``esante.accounts.presentation``). Like the professionals' certificate login, it is
counted on none of the password counters (a certificate cannot be guessed) and every refusal
is traced."""

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from esante.accounts import certificates
from esante.accounts.login import LoginOutcome
from esante.accounts.models import LoginThrottle, User
from esante.accounts.throttling import account_success, pair_success
from esante.audit.catalogue import AuditAction, AuditOutcome
from esante.audit.services import audit_record

from .models import PatientAccount, PatientCertificate


@transaction.atomic
def patient_certificate_bind(
    *, account: PatientAccount, certificate_pem: str, client_address: str | None
) -> str:
    """Binds the presented certificate to the account; "" when done, else the message to show."""
    try:
        verified = certificates.certificate_verify(certificate_pem)
    except certificates.CertificateRefused as exc:
        _bind_trace(account, outcome=AuditOutcome.FAILURE, client_address=client_address, reason=exc.reason)
        return gettext(exc.message)
    existing = PatientCertificate.objects.filter(fingerprint_sha256=verified.fingerprint_sha256).first()
    if existing is not None:
        if existing.account_id == account.pk:
            return ""
        _bind_trace(
            account, outcome=AuditOutcome.REFUSED, client_address=client_address, reason="bound_elsewhere"
        )
        return gettext("Ce certificat est déjà associé à un autre espace patient.")
    PatientCertificate.objects.create(
        account=account,
        subject=verified.subject[:500],
        issuer=verified.issuer[:500],
        serial=verified.serial[:64],
        fingerprint_sha256=verified.fingerprint_sha256,
        not_after=verified.not_after,
        bound_at=timezone.now(),
    )
    _bind_trace(
        account,
        outcome=AuditOutcome.SUCCESS,
        client_address=client_address,
        fingerprint=verified.fingerprint_sha256,
    )
    return ""


def _bind_trace(
    account: PatientAccount, *, outcome: AuditOutcome, client_address: str | None, **details: str
) -> None:
    audit_record(
        action=AuditAction.ESPACE_CERTIFICATE_BIND,
        outcome=outcome,
        actor=account.user,
        patient=account.patient,
        object_type="certificate",
        object_id=details.get("fingerprint", "")[:64],
        client_address=client_address,
        details={**details, "channel": "patient"},
    )


@transaction.atomic
def patient_login_certificate(*, certificate_pem: str, client_address: str | None) -> LoginOutcome:
    """Login with a certificate bound to an active patient account."""
    try:
        verified = certificates.certificate_verify(certificate_pem)
    except certificates.CertificateRefused as exc:
        audit_record(
            action=AuditAction.LOGIN_CERTIFICATE,
            outcome=AuditOutcome.FAILURE,
            actor_label="anonymous",
            client_address=client_address,
            details={"reason": exc.reason, "portal": "patient"},
        )
        return LoginOutcome(ok=False, message=gettext(exc.message))
    bound = (
        PatientCertificate.objects.select_related("account__user")
        .filter(fingerprint_sha256=verified.fingerprint_sha256)
        .first()
    )
    if (
        bound is None
        or bound.account.state != PatientAccount.State.ACTIVE
        or not bound.account.user.is_active
    ):
        audit_record(
            action=AuditAction.LOGIN_CERTIFICATE,
            outcome=AuditOutcome.REFUSED,
            actor=bound.account.user if bound else None,
            actor_label="" if bound else "anonymous",
            object_type="certificate",
            object_id=verified.fingerprint_sha256,
            client_address=client_address,
            details={"reason": "unbound" if bound is None else "inactive", "portal": "patient"},
        )
        return LoginOutcome(
            ok=False,
            message=gettext(
                "Ce certificat n'est associé à aucun espace patient actif. Connectez-vous avec votre "
                "matricule, votre mot de passe et un code, puis associez-le dans « Mes choix »."
            ),
        )
    user = bound.account.user
    account_success(user.get_username())
    pair_success(LoginThrottle.Scope.PAIR, user.get_username(), client_address)
    User.objects.filter(pk=user.pk).update(last_login=timezone.now())
    audit_record(
        action=AuditAction.LOGIN_CERTIFICATE,
        actor=user,
        object_type="certificate",
        object_id=verified.fingerprint_sha256,
        client_address=client_address,
        details={"factor": "certificate", "portal": "patient"},
    )
    return LoginOutcome(ok=True, user=user)
