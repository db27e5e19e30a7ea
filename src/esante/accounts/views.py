"""Portal pages of the accounts app: terms, the five-step activation, login and logout.

HTTP only: forms parse input, services (``services``, ``activation``) decide and trace.
"""

import datetime
from typing import Any

from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_otp import login as otp_login

from esante.core.http import client_address

from . import activation, passwords, presentation
from . import login as login_steps
from .forms import ActivationCodeForm, LoginForm, NewPasswordForm, OneTimeCodeForm, SecurityForm, TermsForm
from .http import forwarded_certificate
from .letters import terms_pdf
from .models import ActivationWizard, CertificatePresentation, User
from .otp import login_device_channel

WIZARD_SESSION_KEY = "accounts_activation_wizard"
COMPLETED_SESSION_KEY = "accounts_activation_completed"
PENDING_LOGIN_KEY = "accounts_login_pending"
NEXT_KEY = "accounts_login_next"
PRESENTATION_KEY = "accounts_certificate_presentation"
LOGIN_METHOD_KEY = "accounts_login_method"
STEPS = ActivationWizard.Step.choices


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


@never_cache
@require_http_methods(["GET", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    """Guide pp.10-11: "Connexion" (certificate) or "Matricule, mot de passe et code"."""
    form = LoginForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        outcome = login_steps.login_password(
            matricule=form.cleaned_data["matricule"],
            password=form.cleaned_data["password"],
            client_address=client_address(request),
        )
        if outcome.ok:
            request.session.cycle_key()
            request.session[PENDING_LOGIN_KEY] = {"user": outcome.user.pk, "at": timezone.now().isoformat()}
            _remember_next(request)
            return redirect("accounts:login_code")
        form.add_error(None, outcome.message)
    return render(request, "accounts/login.html", {"form": form})


def _remember_next(request: HttpRequest) -> None:
    """Keeps a local ``?next=`` for after the login; forgets an earlier one otherwise."""
    target = request.GET.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts=None) and target.startswith("/"):
        request.session[NEXT_KEY] = target
    else:
        request.session.pop(NEXT_KEY, None)


def _pending_user(request: HttpRequest) -> User | None:
    pending = request.session.get(PENDING_LOGIN_KEY)
    if not pending:
        return None
    started = datetime.datetime.fromisoformat(pending["at"])
    if timezone.now() - started > datetime.timedelta(seconds=settings.ESANTE_OTP_VALID_SECONDS * 2):
        request.session.pop(PENDING_LOGIN_KEY, None)
        return None
    return User.objects.filter(pk=pending["user"]).first()


def _complete_login(
    request: HttpRequest, user: User, device: Any, certificate_fingerprint: str = ""
) -> HttpResponseRedirect:
    """Logs in (rotating the session key) and records how: a certificate login, and only such a
    login, may replace a forgotten password (``passwords``)."""
    request.session.pop(PENDING_LOGIN_KEY, None)
    auth.login(request, user, backend="django.contrib.auth.backends.ModelBackend")  # rotates the session key
    if device is not None:
        otp_login(request, device)
    if certificate_fingerprint:
        request.session[LOGIN_METHOD_KEY] = {
            "method": passwords.LOGIN_CERTIFICATE,
            "fingerprint": certificate_fingerprint,
        }
    else:
        request.session[LOGIN_METHOD_KEY] = {"method": passwords.LOGIN_PASSWORD_OTP}
    return redirect(request.session.pop(NEXT_KEY, None) or settings.LOGIN_REDIRECT_URL)


@never_cache
@require_http_methods(["GET", "POST"])
def login_code(request: HttpRequest) -> HttpResponse:
    user = _pending_user(request)
    if user is None:
        messages.error(request, gettext("Votre session de connexion a expiré : recommencez."))
        return redirect("accounts:login")
    address = client_address(request)
    form = OneTimeCodeForm(
        request.POST if request.method == "POST" and "resend" not in request.POST else None
    )
    if request.method == "POST" and "resend" in request.POST:
        outcome = login_steps.login_code_resend(user=user, client_address=address)
        if outcome.ok:
            messages.success(request, gettext("Un nouveau code vous a été envoyé."))
        else:
            messages.error(request, outcome.message)
        return redirect("accounts:login_code")
    if request.method == "POST" and form.is_valid():
        outcome = login_steps.login_code(
            user=user, code=form.cleaned_data["code"].strip(), client_address=address
        )
        if outcome.ok:
            return _complete_login(request, user, outcome.device)
        if outcome.locked_until is not None:
            request.session.pop(PENDING_LOGIN_KEY, None)
            messages.error(request, outcome.message)
            return redirect("accounts:login")
        form.add_error("code", outcome.message)
    by_sms = login_device_channel(user) == "sms"
    return render(request, "accounts/login_code.html", {"form": form, "by_sms": by_sms})


# --- certificate presentations (see ``presentation``) -------------------------------------------


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


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        login_steps.logout_record(user=request.user, client_address=client_address(request))
    auth.logout(request)
    messages.success(request, gettext("Vous êtes déconnecté."))
    return redirect(reverse("accounts:login"))


# --- "Mot de passe oublié" -----------------------------------------------------------------------


@require_GET
def password_forgotten(request: HttpRequest) -> HttpResponse:
    """The two ways back: the LuxTrust certificate, or a new activation letter from the helpdesk."""
    return render(
        request,
        "accounts/password_forgotten.html",
        {"certificate_next": reverse("accounts:password_change")},
    )


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def password_change(request: HttpRequest) -> HttpResponse:
    """A new password without the current one, only in a session that logged in with the bound
    certificate. Other sessions get a 403 page (and a POST is refused and traced): the way back for
    them is the certificate or a new activation letter (see ``passwords``)."""
    login = request.session.get(LOGIN_METHOD_KEY)
    may_change = passwords.session_may_change_password(login)
    if request.method == "GET" and not may_change:
        return render(request, "accounts/password_refused.html", status=403)
    form = NewPasswordForm(request.POST or None)
    # A session that may not change the password is refused (and traced) whatever it posted.
    if request.method == "POST" and (form.is_valid() or not may_change):
        try:
            outcome = passwords.password_change_by_certificate(
                user=request.user,
                password=form.cleaned_data.get("password1", ""),
                login=login,
                client_address=client_address(request),
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            if outcome.ok:
                auth.update_session_auth_hash(request, outcome.user)  # new session key, same session
                messages.success(request, gettext("Votre mot de passe a été modifié."))
                return redirect(settings.LOGIN_REDIRECT_URL)
            return render(request, "accounts/password_refused.html", {"refusal": outcome.message}, status=403)
    return render(request, "accounts/password_change.html", {"form": form})
