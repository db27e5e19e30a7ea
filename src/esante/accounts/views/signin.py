"""Login (matricule and password, then the one-time code) and logout."""

from django.contrib import auth, messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from esante.core.http import client_address

from .. import login as login_steps
from ..forms import LoginForm, OneTimeCodeForm
from ..otp import login_device_channel
from .session import (
    PENDING_LOGIN_KEY,
    _complete_login,
    _pending_user,
    _remember_next,
)


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


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        login_steps.logout_record(user=request.user, client_address=client_address(request))
    auth.logout(request)
    messages.success(request, gettext("Vous êtes déconnecté."))
    return redirect(reverse("accounts:login"))


# --- "Mot de passe oublié" -----------------------------------------------------------------------
