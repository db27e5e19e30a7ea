"""The forgotten-password page and the password change."""

from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from esante.core.http import client_address

from .. import passwords
from ..forms import NewPasswordForm
from .session import (
    LOGIN_METHOD_KEY,
)


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
