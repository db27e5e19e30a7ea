"""HTTP helpers shared by the patient-scoped views: the professional gate and the client address."""

import functools
import ipaddress
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from esante.accounts.models import Professional

ProfessionalView = Callable[..., HttpResponse]


def active_professional(request: HttpRequest) -> Professional | None:
    """The logged-in user's professional record when it is active, else None."""
    professional = getattr(request.user, "professional", None) if request.user.is_authenticated else None
    if professional is None or professional.state != Professional.State.ACTIVE:
        return None
    return professional


def professional_required(view: ProfessionalView) -> Callable[..., HttpResponse]:
    """Logged in, with an active professional account; the view receives it as its second argument.

    An operator or a registered/suspended professional gets a 403 page saying why.
    """

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        professional = active_professional(request)
        if professional is None:
            return render(request, "access/forbidden.html", status=403)
        return view(request, professional, *args, **kwargs)

    return login_required(wrapped)


def client_address(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or the nearest X-Forwarded-For hop when a trusted proxy sent it."""
    remote = request.META.get("REMOTE_ADDR") or None
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if remote in settings.ESANTE_TRUSTED_PROXIES and forwarded:
        remote = forwarded.split(",")[-1].strip()
    try:
        return str(ipaddress.ip_address(remote)) if remote else None
    except ValueError:
        return None
