"""HTTP helpers shared by the patient-scoped views: the professional check, the one "not found"
page every refusal of the access gate maps to, and the client address (re-exported from
``esante.core.http``, the one implementation)."""

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render

from esante.accounts.models import Professional
from esante.core.http import client_address as client_address

from .selectors import RecordNotFound

ProfessionalView = Callable[..., HttpResponse | StreamingHttpResponse]


def active_professional(request: HttpRequest) -> Professional | None:
    """The logged-in user's professional record when it is active, else None."""
    professional = getattr(request.user, "professional", None) if request.user.is_authenticated else None
    if professional is None or professional.state != Professional.State.ACTIVE:
        return None
    return professional


def professional_required(view: ProfessionalView) -> Callable[..., HttpResponse | StreamingHttpResponse]:
    """Logged in, with an active professional account; the view receives it as its second argument.

    An operator or a registered/suspended professional gets a 403 page saying why.
    """

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse | StreamingHttpResponse:
        professional = active_professional(request)
        if professional is None:
            return render(request, "access/forbidden.html", status=403)
        return view(request, professional, *args, **kwargs)

    return login_required(wrapped)


def not_found_page(request: HttpRequest) -> HttpResponse:
    """The answer to ``RecordNotFound``: the same page for a missing and a forbidden record."""
    return render(request, "access/not_found.html", {"message": RecordNotFound.message}, status=404)
