"""The patient principal: pages of the patients' portal ask for an active patient account, and
every refusal of a patient-scoped object is the same 404 page (traced)."""

import copy
import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.db import connections, router
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from esante.accounts.models import Professional
from esante.patients.models import Patient

from . import rows
from .models import USERNAME_PREFIX, PatientAccount, Representation

#: The session key holding the public id of the patient a representative acts for.
ACTING_FOR_KEY = "espace_acting_for"

PatientView = Callable[..., HttpResponse | StreamingHttpResponse]


#: The user's reverse one-to-one to ``Professional`` (``user.professional``), whose cache a
#: patient account's lookup fills.
_USER_PROFESSIONAL = Professional._meta.get_field("user").remote_field
_ACCOUNT_FIELDS = rows.attnames(PatientAccount)
_PATIENT_FIELDS = rows.attnames(Patient)
_ACCOUNT_SQL = (
    f"SELECT {rows.columns(PatientAccount, 'a')}, {rows.columns(Patient, 'p')},"  # noqa: S608 - fixed names
    f" EXISTS (SELECT 1 FROM {Representation._meta.db_table} r"
    " WHERE r.representative_id = a.id AND r.revoked_at IS NULL),"
    f" EXISTS (SELECT 1 FROM {Professional._meta.db_table} x WHERE x.user_id = a.user_id)"
    f" FROM {PatientAccount._meta.db_table} a JOIN {Patient._meta.db_table} p ON p.id = a.patient_id"
    " WHERE a.user_id = %s"
)


def active_patient_account(user: Any) -> PatientAccount | None:
    """The user's patient account when it is active, else None (a professional, an operator)."""
    if not getattr(user, "is_authenticated", False):
        return None
    # One query, written as SQL (the ORM's compiling of it cost more than running it): the
    # account, its patient, whether it represents anybody now, and whether its user is also a
    # professional (never, for a patients' portal login: then the layout's ``user.professional``
    # is known to be absent without a query of its own). The user is the request's, already read.
    alias = router.db_for_read(PatientAccount)
    with connections[alias].cursor() as cursor:
        cursor.execute(_ACCOUNT_SQL, [user.pk])
        found = cursor.fetchone()
    if found is None:
        return None
    count = len(_ACCOUNT_FIELDS)
    account = rows.instance(alias, PatientAccount, _ACCOUNT_FIELDS, found[:count])
    if account.state != PatientAccount.State.ACTIVE:
        return None
    account.patient = rows.instance(alias, Patient, _PATIENT_FIELDS, found[count:-2])
    account.represents = bool(found[-2])
    if not found[-1]:
        _USER_PROFESSIONAL.set_cached_value(user, None)
    account.user = user
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
