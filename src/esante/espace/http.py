"""The patient principal: pages of the patients' portal ask for an active patient account, and
every refusal of a patient-scoped object is the same 404 page (traced)."""

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse

from .models import PatientAccount

PatientView = Callable[..., HttpResponse | StreamingHttpResponse]


def active_patient_account(user: Any) -> PatientAccount | None:
    """The user's patient account when it is active, else None (a professional, an operator)."""
    if not getattr(user, "is_authenticated", False):
        return None
    account = PatientAccount.objects.select_related("patient", "user").filter(user=user).first()
    if account is None or account.state != PatientAccount.State.ACTIVE:
        return None
    return account


def is_active_patient(user: Any) -> bool:
    return active_patient_account(user) is not None


def patient_required(view: PatientView) -> Callable[..., HttpResponse | StreamingHttpResponse]:
    """Logged in as an active patient; the view receives the account as its second argument.

    Anonymous visitors go to the patients' login page; any other principal (a professional, an
    operator) gets a 403 page: patient and professional sessions never mix.
    """

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse | StreamingHttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("espace:login"))
        account = active_patient_account(request.user)
        if account is None:
            return render(request, "espace/forbidden.html", status=403)
        return view(request, account, *args, **kwargs)

    return wrapped


def not_found_page(request: HttpRequest) -> HttpResponse:
    return render(request, "espace/not_found.html", status=404)
