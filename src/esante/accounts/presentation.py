"""Certificate presentations: the round trip portal -> certificate origin -> portal.

The portal never asks the browser for a certificate. Three services carry the round trip:

1. ``certificate_presentation_start`` (portal, "Connexion" of activation step 1 or of the login):
   opens a presentation bound to the session (the caller keeps its id there) and, for the
   activation, to the wizard; returns the address of the origin with a request nonce.
2. ``certificate_present`` (certificate origin, behind nginx's ``ssl_verify_client on`` or the
   demo's own mutual-TLS server): uses the nonce once, verifies the certificate again
   (``certificates.certificate_verify``), records it or the refusal (audited), and returns the
   portal address with a token valid ``ESANTE_CERTIFICATE_TOKEN_SECONDS`` (one minute).
3. ``certificate_token_consume`` (portal): uses the token once, in the session that opened the
   presentation; the caller then binds the certificate (``activation.wizard_certificate``) or
   logs in (``login.login_certificate``), which verify it once more and write their own event.

Nonce and token are 256-bit random values stored as keyed digests; a refusal of the origin still
gets a token, so the professional reads the reason on the portal.
"""

import datetime
import urllib.parse
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from esante.audit.catalogue import AuditAction
from esante.audit.models import AuditEvent
from esante.audit.services import audit_record

from . import certificates
from .codes import certificate_digest, certificate_secret_new
from .models import ActivationWizard, CertificatePresentation

Purpose = CertificatePresentation.Purpose

# French, as stored (``refusal_message``) and traced; translated when shown (``gettext``).
NO_CERTIFICATE = gettext_noop(
    "Aucun certificat LuxTrust n'a été présenté. Insérez votre carte ou connectez votre Token, "
    "puis cliquez sur « Connexion »."
)
STALE = gettext_noop(
    "Cette connexion par certificat n'est plus valable : cliquez à nouveau sur « Connexion »."
)


class OriginNotConfigured(Exception):
    """No certificate origin is configured (``ESANTE_CERTIFICATE_ORIGIN``)."""


@dataclass
class Consumed:
    """What the portal learns from a token: the certificate, or the message to show (in the
    language active when the token is consumed: the request's)."""

    ok: bool
    purpose: str = ""
    certificate_pem: str = ""
    message: str = ""
    wizard: ActivationWizard | None = None


def _now() -> datetime.datetime:
    return timezone.now()


@transaction.atomic
def certificate_presentation_start(
    *, purpose: str, wizard: ActivationWizard | None, return_url: str
) -> tuple[CertificatePresentation, str]:
    """Opens a presentation; returns it and the origin address to send the browser to.

    ``return_url`` is the portal's absolute address of the return view (built by the caller from
    the request, whose host Django has checked). Raises ``OriginNotConfigured``.
    """
    origin = settings.ESANTE_CERTIFICATE_ORIGIN
    if not origin:
        raise OriginNotConfigured
    if (purpose == Purpose.ACTIVATION) != (wizard is not None):
        raise ValueError("an activation presentation needs its wizard, a login one none")
    nonce = certificate_secret_new()
    now = _now()
    presentation = CertificatePresentation.objects.create(
        purpose=purpose,
        wizard=wizard,
        request_digest=certificate_digest("request", nonce),
        request_expires_at=now + datetime.timedelta(seconds=settings.ESANTE_CERTIFICATE_REQUEST_SECONDS),
        return_url=return_url,
        created_at=now,
    )
    query = urllib.parse.urlencode({"demande": nonce})
    return presentation, f"{origin}{reverse('accounts:certificate_origin')}?{query}"


def _audit_refusal(presentation: CertificatePresentation, *, reason: str, client_address: str | None) -> None:
    """A refused presentation is traced as the step it belongs to (activation step 1 or login)."""
    details = {"reason": reason, "origin": "certificate"}
    if presentation.purpose == Purpose.ACTIVATION:
        audit_record(
            action=AuditAction.ACTIVATION_CERTIFICATE,
            outcome=AuditEvent.Outcome.REFUSED,
            actor_label="anonymous",
            object_type="activation",
            object_id=presentation.wizard_id or "",
            client_address=client_address,
            details=details,
        )
        return
    # Counted on no failure counter: a certificate cannot be guessed (the TLS verification of its
    # key is the factor), and a refused one must not delay the password logins of its network.
    audit_record(
        action=AuditAction.LOGIN_CERTIFICATE,
        outcome=AuditEvent.Outcome.FAILURE,
        actor_label="anonymous",
        client_address=client_address,
        details=details,
    )


@transaction.atomic
def certificate_present(
    *, request_nonce: str, certificate_pem: str, client_address: str | None
) -> str | None:
    """On the certificate origin: records the certificate presented for a request nonce.

    Returns the portal address (with the one-minute token) to send the browser back to, or None
    when the nonce is unknown, expired or already used (traced; nothing to go back to).
    ``certificate_pem`` is what the trusted proxy forwarded ("" when nothing believable came).
    """
    now = _now()
    presentation = (
        CertificatePresentation.objects.select_for_update()
        .filter(request_digest=certificate_digest("request", request_nonce))
        .first()
        if request_nonce
        else None
    )
    if (
        presentation is None
        or presentation.presented_at is not None
        or presentation.request_expires_at <= now
    ):
        reason = "unknown_request" if presentation is None else "request_used_or_expired"
        audit_record(
            action=AuditAction.CERTIFICATE_PRESENT,
            outcome=AuditEvent.Outcome.REFUSED,
            actor_label="anonymous",
            object_type="certificate_presentation",
            object_id=presentation.pk if presentation else "",
            client_address=client_address,
            details={"reason": reason},
        )
        return None
    presentation.presented_at = now
    if not certificate_pem:
        presentation.refusal_reason, presentation.refusal_message = "no_certificate", NO_CERTIFICATE
    else:
        try:
            verified = certificates.certificate_verify(certificate_pem)
        except certificates.CertificateRefused as exc:
            presentation.refusal_reason, presentation.refusal_message = exc.reason, exc.message
        else:
            presentation.certificate_pem = verified.pem
    token = certificate_secret_new()
    presentation.token_digest = certificate_digest("token", token)
    presentation.token_expires_at = now + datetime.timedelta(
        seconds=settings.ESANTE_CERTIFICATE_TOKEN_SECONDS
    )
    presentation.save()
    if presentation.refusal_reason:
        _audit_refusal(presentation, reason=presentation.refusal_reason, client_address=client_address)
    else:
        audit_record(
            action=AuditAction.CERTIFICATE_PRESENT,
            actor_label="anonymous",
            object_type="certificate_presentation",
            object_id=presentation.pk,
            client_address=client_address,
            details={"purpose": presentation.purpose, "fingerprint": verified.fingerprint_sha256},
        )
    separator = "&" if "?" in presentation.return_url else "?"
    return f"{presentation.return_url}{separator}{urllib.parse.urlencode({'jeton': token})}"


@transaction.atomic
def certificate_token_consume(
    *, token: str, presentation_id: int | None, client_address: str | None
) -> Consumed:
    """On the portal: uses a return token once, in the session that opened the presentation.

    Refused (and traced) when the token is unknown, used, older than one minute, or belongs to
    another session (``presentation_id`` is the id that session kept); the refusal says to click
    « Connexion » again.
    """
    now = _now()
    presentation = (
        CertificatePresentation.objects.select_for_update(of=("self",))
        .select_related("wizard")
        .filter(token_digest=certificate_digest("token", token))
        .first()
        if token
        else None
    )
    reason = ""
    if presentation is None:
        reason = "unknown_token"
    elif presentation.consumed_at is not None:
        reason = "token_used"
    elif presentation.token_expires_at is None or presentation.token_expires_at <= now:
        reason = "token_expired"
    elif presentation.pk != presentation_id:
        reason = "other_session"
    if reason:
        audit_record(
            action=AuditAction.CERTIFICATE_TOKEN,
            outcome=AuditEvent.Outcome.REFUSED,
            actor_label="anonymous",
            object_type="certificate_presentation",
            object_id=presentation.pk if presentation else "",
            client_address=client_address,
            details={"reason": reason},
        )
        return Consumed(
            ok=False, purpose=presentation.purpose if presentation else "", message=gettext(STALE)
        )
    assert presentation is not None  # noqa: S101 - narrowed by reason == ""
    presentation.consumed_at = now
    pem, presentation.certificate_pem = presentation.certificate_pem, ""  # kept no longer than needed
    presentation.save(update_fields=["consumed_at", "certificate_pem"])
    if presentation.refusal_reason:
        return Consumed(
            ok=False,
            purpose=presentation.purpose,
            message=gettext(presentation.refusal_message),  # stored in French
            wizard=presentation.wizard,
        )
    return Consumed(ok=True, purpose=presentation.purpose, certificate_pem=pem, wizard=presentation.wizard)
