"""The patients' portal: its home, the activation, the login (password and code, or a
certificate) and the logout."""

import datetime

from django.conf import settings
from django.contrib import auth, messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_otp import login as otp_login

from esante.accounts import login as login_steps
from esante.accounts import presentation
from esante.accounts.forms import LoginForm, OneTimeCodeForm, SecurityForm
from esante.accounts.models import CertificatePresentation, User
from esante.accounts.otp import login_device_channel
from esante.core.http import client_address

from .. import accounts as activation_steps
from ..certificates import patient_certificate_bind, patient_login_certificate
from ..forms import CertificateActivationForm, PatientCodeForm
from ..http import active_patient_account, is_active_patient, patient_required
from ..models import USERNAME_PREFIX, PatientAccount, PatientActivation

ACTIVATION_KEY = "espace_activation"
PENDING_LOGIN_KEY = "espace_login_pending"
Step = PatientActivation.Step


def home(request: HttpRequest) -> HttpResponse:
    """« Je suis un patient »: activate the account, or log in."""
    return render(request, "espace/home.html")


# --- activation -------------------------------------------------------------------------------


def _activation(request: HttpRequest) -> PatientActivation | None:
    return activation_steps.activation_for_key(request.session.get(ACTIVATION_KEY))


@never_cache
@require_http_methods(["GET", "POST"])
def activation(request: HttpRequest) -> HttpResponse:
    """Step 1: the letter's matricule and code, and the terms."""
    current = _activation(request)
    if current is not None and current.step != Step.CODE:
        return redirect(
            "espace:activation_security" if current.step == Step.SECURITY else "espace:activation_code"
        )
    form = PatientCodeForm(request.POST or None)
    certificate_form = CertificateActivationForm(prefix="certificat")
    if request.method == "POST" and form.is_valid():
        if current is None:
            current = activation_steps.activation_start(terms_version=settings.ESANTE_TERMS_VERSION)
            request.session[ACTIVATION_KEY] = current.key
        outcome = activation_steps.activation_code(
            activation=current,
            matricule=form.cleaned_data["matricule"],
            code=form.cleaned_data["code"],
            client_address=client_address(request),
        )
        if outcome.ok:
            return redirect("espace:activation_security")
        form.add_error(None, outcome.message)
    return _activation_page(request, form, certificate_form)


def _activation_page(
    request: HttpRequest, form: PatientCodeForm, certificate_form: CertificateActivationForm
) -> HttpResponse:
    return render(
        request,
        "espace/activation_code.html",
        {"form": form, "certificate_form": certificate_form, "step": 1},
    )


@never_cache
@require_POST
def activation_by_certificate(request: HttpRequest) -> HttpResponse:
    """Step 1 with a LuxTrust product or eID card instead of the letter: the terms accepted
    here, the certificate presented on the certificate origin (``certificate_return``)."""
    current = _activation(request)
    if current is not None and current.step != Step.CODE:
        return redirect("espace:activation")
    certificate_form = CertificateActivationForm(request.POST, prefix="certificat")
    if not certificate_form.is_valid():
        return _activation_page(request, PatientCodeForm(), certificate_form)
    if current is None:
        current = activation_steps.activation_start(terms_version=settings.ESANTE_TERMS_VERSION)
        request.session[ACTIVATION_KEY] = current.key
    return _certificate_start(request, "activate", "espace:activation")


@never_cache
@require_http_methods(["GET", "POST"])
def activation_security(request: HttpRequest) -> HttpResponse:
    """Step 2: the password and where the one-time codes go."""
    current = _activation(request)
    if current is None or current.step == Step.CODE:
        return redirect("espace:activation")
    if current.step == Step.CONFIRMATION:
        return redirect("espace:activation_code")
    form = SecurityForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            outcome = activation_steps.activation_security(
                activation=current,
                password=form.cleaned_data["password1"],
                channel=form.cleaned_data["channel"],
                address=form.cleaned_data["address"],
                client_address=client_address(request),
            )
        except ValidationError as exc:
            for name, errors in exc.message_dict.items():
                for error in errors:
                    form.add_error(name if name in form.fields else None, error)
        else:
            if outcome.ok:
                return redirect("espace:activation_code")
            form.add_error(None, outcome.message)
    return render(request, "espace/activation_security.html", {"form": form, "step": 2})


@never_cache
@require_http_methods(["GET", "POST"])
def activation_code(request: HttpRequest) -> HttpResponse:
    """Step 3: the one-time code received; the account is then active."""
    current = _activation(request)
    if current is None or current.step != Step.CONFIRMATION:
        return redirect("espace:activation")
    if request.method == "POST" and "back" in request.POST:
        activation_steps.activation_back(activation=current)
        return redirect("espace:activation_security")
    form = OneTimeCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        outcome = activation_steps.activation_confirm(
            activation=current, code=form.cleaned_data["code"].strip(), client_address=client_address(request)
        )
        if outcome.ok:
            request.session.pop(ACTIVATION_KEY, None)
            messages.success(request, gettext("Votre espace patient est activé. Connectez-vous."))
            return redirect("espace:login")
        form.add_error("code", outcome.message)
        if _activation(request) is None:  # the activation ended (letter no longer usable)
            request.session.pop(ACTIVATION_KEY, None)
    return render(
        request,
        "espace/activation_confirm.html",
        {"form": form, "step": 3, "by_sms": current.channel == "sms"},
    )


# --- login ------------------------------------------------------------------------------------


def _pending_user(request: HttpRequest) -> User | None:
    pending = request.session.get(PENDING_LOGIN_KEY)
    if not pending:
        return None
    started = datetime.datetime.fromisoformat(pending["at"])
    if (timezone.now() - started).total_seconds() > settings.ESANTE_OTP_VALID_SECONDS * 2:
        request.session.pop(PENDING_LOGIN_KEY, None)
        return None
    user = User.objects.filter(pk=pending["user"], username__startswith=USERNAME_PREFIX).first()
    return user


@never_cache
@require_http_methods(["GET", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    """Matricule and password, then the one-time code (the professionals' rules)."""
    form = LoginForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        outcome = login_steps.login_password(
            matricule=form.cleaned_data["matricule"],
            password=form.cleaned_data["password"],
            client_address=client_address(request),
            username_prefix=USERNAME_PREFIX,
            account_active=is_active_patient,
        )
        if outcome.ok:
            request.session.cycle_key()
            request.session[PENDING_LOGIN_KEY] = {"user": outcome.user.pk, "at": timezone.now().isoformat()}
            return redirect("espace:login_code")
        form.add_error(None, outcome.message)
    return render(request, "espace/login.html", {"form": form})


@never_cache
@require_http_methods(["GET", "POST"])
def login_code(request: HttpRequest) -> HttpResponse:
    user = _pending_user(request)
    if user is None:
        messages.error(request, gettext("Votre session de connexion a expiré : recommencez."))
        return redirect("espace:login")
    address = client_address(request)
    if request.method == "POST" and "resend" in request.POST:
        outcome = login_steps.login_code_resend(user=user, client_address=address)
        if outcome.ok:
            messages.success(request, gettext("Un nouveau code vous a été envoyé."))
        else:
            messages.error(request, outcome.message)
        return redirect("espace:login_code")
    form = OneTimeCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        outcome = login_steps.login_code(
            user=user,
            code=form.cleaned_data["code"].strip(),
            client_address=address,
            account_active=is_active_patient,
        )
        if outcome.ok:
            request.session.pop(PENDING_LOGIN_KEY, None)
            auth.login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            otp_login(request, outcome.device)
            return redirect("espace:record")
        if outcome.locked_until is not None:
            request.session.pop(PENDING_LOGIN_KEY, None)
            messages.error(request, outcome.message)
            return redirect("espace:login")
        form.add_error("code", outcome.message)
    by_sms = login_device_channel(user) == "sms"
    # The professionals' code page: the same factor, the same words.
    return render(request, "accounts/login_code.html", {"form": form, "by_sms": by_sms})


# --- certificate (LuxTrust product or eID card), on the professionals' certificate origin -----

CERTIFICATE_KEY = "espace_certificate_presentation"


def _certificate_start(request: HttpRequest, intent: str, back: str) -> HttpResponse:
    try:
        started, origin_url = presentation.certificate_presentation_start(
            purpose=CertificatePresentation.Purpose.LOGIN,
            wizard=None,
            return_url=request.build_absolute_uri(reverse("espace:certificate_return")),
        )
    except presentation.OriginNotConfigured:
        messages.error(
            request, gettext("La connexion par certificat n'est pas disponible sur cette plateforme.")
        )
        return redirect(back)
    request.session[CERTIFICATE_KEY] = {"presentation": started.pk, "intent": intent}
    return HttpResponseRedirect(origin_url)


@never_cache
@require_POST
def login_certificate(request: HttpRequest) -> HttpResponse:
    """« Connexion » with a bound LuxTrust product or eID card."""
    return _certificate_start(request, "login", "espace:login")


@never_cache
@require_POST
@patient_required
def certificate_bind(request: HttpRequest, account: PatientAccount) -> HttpResponse:
    """« Associer mon certificat »: from a password and code session, for the holder's own account."""
    if account.acting_for is not None:
        messages.error(request, gettext("Un certificat s'associe à votre propre espace."))
        return redirect("espace:choices")
    return _certificate_start(request, "bind", "espace:choices")


@never_cache
@require_GET
def certificate_return(request: HttpRequest) -> HttpResponse:
    started = request.session.pop(CERTIFICATE_KEY, None) or {}
    address = client_address(request)
    consumed = presentation.certificate_token_consume(
        token=request.GET.get("jeton", ""),
        presentation_id=started.get("presentation"),
        client_address=address,
    )
    if started.get("intent") == "activate":
        return _certificate_activation(request, consumed, address)
    if started.get("intent") == "bind":
        account = active_patient_account(request.user)
        if account is None:
            return redirect("espace:login")
        message = (
            consumed.message
            if not consumed.ok
            else patient_certificate_bind(
                account=account, certificate_pem=consumed.certificate_pem, client_address=address
            )
        )
        if message:
            messages.error(request, message)
        else:
            messages.success(
                request, gettext("Votre certificat est associé : il vous connecte désormais seul.")
            )
        return redirect("espace:choices")
    if not consumed.ok:
        messages.error(request, consumed.message)
        return redirect("espace:login")
    outcome = patient_login_certificate(certificate_pem=consumed.certificate_pem, client_address=address)
    if not outcome.ok:
        messages.error(request, outcome.message)
        return redirect("espace:login")
    request.session.pop(PENDING_LOGIN_KEY, None)
    auth.login(request, outcome.user, backend="django.contrib.auth.backends.ModelBackend")
    return redirect("espace:record")


def _certificate_activation(
    request: HttpRequest, consumed: presentation.Consumed, address: str | None
) -> HttpResponse:
    current = _activation(request)
    if current is None or current.step != Step.CODE:
        messages.error(request, gettext("Cette activation a expiré. Recommencez."))
        return redirect("espace:activation")
    outcome = (
        activation_steps.activation_certificate(
            activation=current, certificate_pem=consumed.certificate_pem, client_address=address
        )
        if consumed.ok
        else activation_steps.StepOutcome(ok=False, message=consumed.message)
    )
    if not outcome.ok:
        messages.error(request, outcome.message)
        return redirect("espace:activation")
    return redirect("espace:activation_security")


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        login_steps.logout_record(user=request.user, client_address=client_address(request))
    auth.logout(request)
    messages.success(request, gettext("Vous êtes déconnecté."))
    return redirect("espace:login")
