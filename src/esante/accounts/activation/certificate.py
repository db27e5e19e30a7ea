"""Step 1: the LuxTrust certificate (or, when allowed, none); and the check at step 2 that the
certificate names the professional."""

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext

from esante.audit.catalogue import AuditAction

from .. import certificates
from ..models import (
    ActivationWizard,
    Certificate,
    Professional,
)
from .wizard import REFUSED, Step, StepOutcome, trace, wizard_event, wizard_locked


@transaction.atomic
def wizard_certificate(
    *, wizard: ActivationWizard, certificate_pem: str, client_address: str | None
) -> StepOutcome:
    """Step 1: the LuxTrust certificate is verified and kept until step 2 identifies the account."""
    wizard = wizard_locked(wizard, Step.CERTIFICATE)
    try:
        verified = certificates.certificate_verify(certificate_pem)
    except certificates.CertificateRefused as exc:
        trace(wizard, "certificate", outcome=REFUSED, client_address=client_address, reason=exc.reason)
        return StepOutcome(ok=False, message=gettext(exc.message))
    if Certificate.objects.filter(fingerprint_sha256=verified.fingerprint_sha256).exists():
        trace(wizard, "certificate", outcome=REFUSED, client_address=client_address, reason="already_bound")
        return StepOutcome(ok=False, message=gettext("Ce certificat est déjà associé à un compte."))
    wizard.certificate_pem = verified.pem
    wizard.step = Step.CODE
    wizard.save()
    trace(wizard, "certificate", client_address=client_address, fingerprint=verified.fingerprint_sha256)
    return StepOutcome(ok=True)


@transaction.atomic
def wizard_certificate_skip(*, wizard: ActivationWizard, client_address: str | None) -> StepOutcome:
    """Step 1 without a certificate: allowed only where ``ESANTE_ACTIVATION_CERTIFICATE_OPTIONAL``
    (the demo, which has no certificate origin yet); refused and traced elsewhere."""
    wizard = wizard_locked(wizard, Step.CERTIFICATE)
    if not settings.ESANTE_ACTIVATION_CERTIFICATE_OPTIONAL:
        trace(
            wizard, "certificate", outcome=REFUSED, client_address=client_address, reason="skip_not_allowed"
        )
        return StepOutcome(
            ok=False, message=gettext("Le produit LuxTrust est obligatoire pour activer votre compte.")
        )
    wizard.step = Step.CODE
    wizard.save()
    trace(wizard, "certificate", client_address=client_address, skipped=True)
    return StepOutcome(ok=True)


def certificate_names(
    wizard: ActivationWizard, professional: Professional, *, client_address: str | None
) -> bool:
    """Whether the certificate of step 1 names the professional; if not, the wizard goes back to
    step 1 without it and the mismatch is traced."""
    verified = certificates.certificate_verify(wizard.certificate_pem)
    if certificates.certificate_holder_matches(
        verified,
        last_name=professional.last_name,
        first_name=professional.first_name,
        matricule=professional.matricule,
    ):
        return True
    wizard.certificate_pem = ""
    wizard.step = Step.CERTIFICATE
    wizard.save()
    wizard_event(
        wizard,
        AuditAction.ACTIVATION_CERTIFICATE_MISMATCH,
        actor=professional.user,
        outcome=REFUSED,
        client_address=client_address,
        details={"subject": verified.subject},
    )
    return False
