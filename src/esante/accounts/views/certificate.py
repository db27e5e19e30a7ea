"""Login and activation with a LuxTrust certificate: the presentation and its return."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from esante.core.http import client_address

from .. import activation, presentation
from .. import login as login_steps
from ..http import forwarded_certificate
from ..models import ActivationWizard, CertificatePresentation
from .session import (
    PRESENTATION_KEY,
    WIZARD_SESSION_KEY,
    _complete_login,
    _remember_next,
)


def _certificate_start(request: HttpRequest, purpose: str, wizard: ActivationWizard | None) -> HttpResponse:
    """ "Connexion": sends the browser to the certificate origin, bound to this session."""
    back = "accounts:login" if wizard is None else "accounts:activation_step"
    back_args = () if wizard is None else (1,)
    try:
        started, origin_url = presentation.certificate_presentation_start(
            purpose=purpose,
            wizard=wizard,
            return_url=request.build_absolute_uri(reverse("accounts:certificate_return")),
        )
    except presentation.OriginNotConfigured:
        messages.error(
            request, gettext("La connexion par certificat n'est pas disponible sur cette plateforme.")
        )
        return redirect(back, *back_args)
    request.session[PRESENTATION_KEY] = started.pk
    return HttpResponseRedirect(origin_url)


@never_cache
@require_POST
def login_certificate(request: HttpRequest) -> HttpResponse:
    """Login "Connexion": the certificate is asked for on the certificate origin, not here."""
    _remember_next(request)
    return _certificate_start(request, CertificatePresentation.Purpose.LOGIN, None)


@never_cache
@require_GET
def certificate_origin(request: HttpRequest) -> HttpResponse:
    """On the certificate origin only: records the certificate the TLS layer verified and sends the
    browser back to the portal with a one-minute token (or explains that the request is stale)."""
    back_url = presentation.certificate_present(
        request_nonce=request.GET.get("demande", ""),
        certificate_pem=forwarded_certificate(request),
        client_address=client_address(request),
    )
    if back_url is None:
        return render(request, "accounts/certificate_origin.html", status=400)
    return HttpResponseRedirect(back_url)


@never_cache
@require_GET
def certificate_return(request: HttpRequest) -> HttpResponse:
    """Back on the portal: the token is used once, then the certificate is bound or logs in."""
    address = client_address(request)
    consumed = presentation.certificate_token_consume(
        token=request.GET.get("jeton", ""),
        presentation_id=request.session.pop(PRESENTATION_KEY, None),
        client_address=address,
    )
    if consumed.purpose == CertificatePresentation.Purpose.ACTIVATION:
        wizard = activation.wizard_for_key(request.session.get(WIZARD_SESSION_KEY))
        if wizard is None or consumed.wizard is None or wizard.pk != consumed.wizard.pk:
            if consumed.ok:
                messages.error(request, gettext(presentation.STALE))
            else:
                messages.error(request, consumed.message)
            return redirect("accounts:activation_step", step=wizard.step if wizard else 1)
        if not consumed.ok:
            messages.error(request, consumed.message)
            return redirect("accounts:activation_step", step=wizard.step)
        try:
            outcome = activation.wizard_certificate(
                wizard=wizard, certificate_pem=consumed.certificate_pem, client_address=address
            )
        except activation.WizardStepError:
            return redirect("accounts:activation_step", step=wizard.step)
        if not outcome.ok:
            messages.error(request, outcome.message)
        return redirect("accounts:activation_step", step=2 if outcome.ok else 1)
    if not consumed.ok:
        messages.error(request, consumed.message)
        return redirect("accounts:login")
    login_outcome = login_steps.login_certificate(
        certificate_pem=consumed.certificate_pem, client_address=address
    )
    if not login_outcome.ok:
        messages.error(request, login_outcome.message)
        return redirect("accounts:login")
    return _complete_login(
        request, login_outcome.user, None, certificate_fingerprint=login_outcome.extra["fingerprint"]
    )
