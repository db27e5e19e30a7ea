"""The terms and the five-step activation pages."""

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from esante.core.http import client_address

from .. import activation
from ..forms import ActivationCodeForm, OneTimeCodeForm, SecurityForm, TermsForm
from ..letters import terms_pdf
from ..models import ActivationWizard, CertificatePresentation
from .certificate import _certificate_start
from .session import (
    COMPLETED_SESSION_KEY,
    STEPS,
    WIZARD_SESSION_KEY,
)

# --- terms ---------------------------------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
def terms(request: HttpRequest) -> HttpResponse:
    """Guide p.4: PRÉ-REQUIS, the CGU and "Activer mon compte"."""
    form = TermsForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        wizard = activation.wizard_start(
            terms_version=settings.ESANTE_TERMS_VERSION, client_address=client_address(request)
        )
        request.session.cycle_key()
        request.session[WIZARD_SESSION_KEY] = wizard.key
        request.session.pop(COMPLETED_SESSION_KEY, None)
        return redirect("accounts:activation_step", step=1)
    return render(
        request, "accounts/terms.html", {"form": form, "terms_version": settings.ESANTE_TERMS_VERSION}
    )


@require_GET
def terms_download(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(terms_pdf(), content_type="application/pdf")
    filename = f"cgu-plateforme-esante-{settings.ESANTE_TERMS_VERSION}.pdf"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# --- the wizard ----------------------------------------------------------------------------------


def _render_step(
    request: HttpRequest, wizard: ActivationWizard | None, step: int, **context: Any
) -> HttpResponse:
    context.update({"wizard": wizard, "step": step, "steps": STEPS})
    return render(request, f"accounts/step{step}.html", context)


@never_cache
@require_http_methods(["GET", "POST"])
def activation_step(request: HttpRequest, step: int) -> HttpResponse:
    """One page per step; only the wizard's current step is shown or accepted."""
    wizard = activation.wizard_for_key(request.session.get(WIZARD_SESSION_KEY))
    if wizard is None:
        messages.error(
            request, gettext("Votre activation a expiré ou n'a pas commencé : recommencez depuis le début.")
        )
        return redirect("accounts:activation")
    if step != wizard.step:
        return redirect("accounts:activation_step", step=wizard.step)
    address = client_address(request)
    if request.method == "POST" and "previous" in request.POST:
        try:
            wizard = activation.wizard_back(wizard=wizard, client_address=address)
        except activation.WizardStepError:
            return redirect("accounts:activation")
        return redirect("accounts:activation_step", step=wizard.step)
    try:
        handler = _STEP_HANDLERS[step]
        return handler(request, wizard, address)
    except activation.WizardStepError:
        return redirect("accounts:activation_step", step=wizard.step)


def _step_certificate(request: HttpRequest, wizard: ActivationWizard, address: str | None) -> HttpResponse:
    if request.method == "POST" and "skip" in request.POST:
        outcome = activation.wizard_certificate_skip(wizard=wizard, client_address=address)
        if not outcome.ok:
            messages.error(request, outcome.message)
        return redirect("accounts:activation_step", step=wizard.step + 1 if outcome.ok else 1)
    if request.method == "POST":
        return _certificate_start(request, CertificatePresentation.Purpose.ACTIVATION, wizard)
    return _render_step(
        request, wizard, 1, certificate_optional=settings.ESANTE_ACTIVATION_CERTIFICATE_OPTIONAL
    )


def _step_code(request: HttpRequest, wizard: ActivationWizard, address: str | None) -> HttpResponse:
    form = ActivationCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if form.cleaned_data["received"] == "non":
            return _render_step(request, wizard, 2, form=form, not_received=True)
        outcome = activation.wizard_code(
            wizard=wizard,
            matricule=form.cleaned_data["matricule"],
            code=form.cleaned_data["code"],
            client_address=address,
        )
        if outcome.ok:
            return redirect("accounts:activation_step", step=3)
        wizard.refresh_from_db()
        if wizard.step != 2:
            messages.error(request, outcome.message)
            return redirect("accounts:activation_step", step=wizard.step)
        form.add_error(None, outcome.message)
    return _render_step(request, wizard, 2, form=form)


def _step_information(request: HttpRequest, wizard: ActivationWizard, address: str | None) -> HttpResponse:
    if request.method == "POST":
        activation.wizard_information(wizard=wizard, client_address=address)
        return redirect("accounts:activation_step", step=4)
    return _render_step(request, wizard, 3, professional=wizard.professional)


def _step_security(request: HttpRequest, wizard: ActivationWizard, address: str | None) -> HttpResponse:
    professional = wizard.professional
    initial = {"channel": "sms", "address": professional.mobile if professional else ""}
    choose_form = SecurityForm(initial=initial)
    code_form = OneTimeCodeForm()
    if request.method == "POST" and request.POST.get("action") == "choose":
        choose_form = SecurityForm(request.POST)
        if choose_form.is_valid():
            data = choose_form.cleaned_data
            try:
                outcome = activation.wizard_security_choose(
                    wizard=wizard,
                    password=data["password1"],
                    channel=data["channel"],
                    address=data["address"],
                    client_address=address,
                )
            except ValidationError as exc:
                choose_form.add_error(None, exc)
            else:
                if outcome.ok:
                    messages.success(request, gettext("Un code vous a été envoyé. Saisissez-le ci-dessous."))
                    return redirect("accounts:activation_step", step=4)
                choose_form.add_error(None, outcome.message)
    elif request.method == "POST" and request.POST.get("action") == "verify":
        code_form = OneTimeCodeForm(request.POST)
        if code_form.is_valid():
            outcome = activation.wizard_security_verify(
                wizard=wizard, code=code_form.cleaned_data["code"].strip(), client_address=address
            )
            if outcome.ok:
                request.session.pop(WIZARD_SESSION_KEY, None)
                request.session[COMPLETED_SESSION_KEY] = True
                return redirect("accounts:activation_done")
            code_form.add_error("code", outcome.message)
    wizard.refresh_from_db()
    code_sent = bool(
        wizard.code_digest and wizard.code_valid_until and wizard.code_valid_until > timezone.now()
    )
    if not code_sent and code_form.errors.get("code"):
        # The code died with this try (or was not live): its form is hidden, its refusal is shown.
        messages.error(request, " ".join(str(error) for error in code_form.errors["code"]))
    return _render_step(request, wizard, 4, choose_form=choose_form, code_form=code_form, code_sent=code_sent)


_STEP_HANDLERS = {1: _step_certificate, 2: _step_code, 3: _step_information, 4: _step_security}


@never_cache
@require_GET
def activation_done(request: HttpRequest) -> HttpResponse:
    """Step 5: shown once, right after the activation completed in this session."""
    if not request.session.pop(COMPLETED_SESSION_KEY, False):
        return redirect("accounts:activation")
    return _render_step(request, None, 5)


# --- login ---------------------------------------------------------------------------------------
