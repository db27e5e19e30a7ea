"""What the accounts pages keep in the session, and the end of a login."""

import datetime
from typing import Any

from django.conf import settings
from django.contrib import auth
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django_otp import login as otp_login

from .. import passwords
from ..models import ActivationWizard, User

WIZARD_SESSION_KEY = "accounts_activation_wizard"
COMPLETED_SESSION_KEY = "accounts_activation_completed"
PENDING_LOGIN_KEY = "accounts_login_pending"
NEXT_KEY = "accounts_login_next"
PRESENTATION_KEY = "accounts_certificate_presentation"
LOGIN_METHOD_KEY = "accounts_login_method"
STEPS = ActivationWizard.Step.choices


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
