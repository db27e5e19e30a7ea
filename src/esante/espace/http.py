"""The patient principal: pages of the patients' portal ask for an active patient account, and
every refusal of a patient-scoped object is the same 404 page (traced)."""

import copy
import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.db.models import Exists, OuterRef
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from .models import USERNAME_PREFIX, PatientAccount, Representation

#: The session key holding the public id of the patient a representative acts for.
ACTING_FOR_KEY = "espace_acting_for"

PatientView = Callable[..., HttpResponse | StreamingHttpResponse]


def active_patient_account(user: Any) -> PatientAccount | None:
    """The user's patient account when it is active, else None (a professional, an operator)."""
    if not getattr(user, "is_authenticated", False):
        return None
    account = (
        PatientAccount.objects.select_related("patient", "user")
        .annotate(
            represents=Exists(Representation.objects.filter(representative=OuterRef("pk"), revoked_at=None))
        )
        .filter(user=user)
        .first()
    )
    if account is None or account.state != PatientAccount.State.ACTIVE:
        return None
    return account


def is_patient_user(user: Any) -> bool:
    """Whether ``user`` is a patients' portal login (whatever its state)."""
    return str(user.get_username()).startswith(USERNAME_PREFIX)


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
        return view(request, acting_account(request, account), *args, **kwargs)

    return wrapped


def current_representations(account: PatientAccount) -> list[Representation]:
    now = timezone.now()
    return [
        r
        for r in Representation.objects.filter(representative=account, revoked_at__isnull=True)
        .select_related("patient")
        .order_by("patient__birth_name")
        if r.is_current(now)
    ]


def acting_account(request: HttpRequest, account: PatientAccount) -> PatientAccount:
    """The account the request acts with: the holder's own, or — when the holder chose to act
    for a patient they currently represent — a copy whose ``patient`` is the represented patient
    and whose ``acting_for`` says under which representation. A representation that ended takes
    effect at once: the session falls back to the holder's own record."""
    # One query for the account and whether it represents anybody; the representations only then.
    represented = current_representations(account) if getattr(account, "represents", True) else []
    account.represented = represented
    chosen = request.session.get(ACTING_FOR_KEY)
    if not chosen:
        return account
    representation = next((r for r in represented if str(r.patient.public_id) == chosen), None)
    if representation is None:
        request.session.pop(ACTING_FOR_KEY, None)
        return account
    acting = copy.copy(account)
    acting.patient = representation.patient
    acting.acting_for = representation
    return acting


def not_found_page(request: HttpRequest) -> HttpResponse:
    return render(request, "espace/not_found.html", status=404)
