"""The patients' portal cast: a patient with an active account, logged in."""

import re
from typing import Any

from django.core import mail
from django.test import Client

from esante.audit.models import AuditEvent
from esante.espace import accounts
from esante.espace.models import PatientAccount
from esante.patients.models import Patient
from tests.access.factories import make_patient
from tests.accounts.conftest import pki  # noqa: F401 - the throw-away certificate authority fixture
from tests.tlog.conftest import journal_url  # noqa: F401 - the platform over real HTTP

PASSWORD = "Tisane-de-camomille-42"


def last_code() -> str:
    found = re.search(r"\b(\d{6})\b", mail.outbox[-1].body)
    assert found is not None
    return found.group(1)


def active_account(patient: Patient | None = None, *, email: str = "peppa@example.lu") -> PatientAccount:
    """A patient account activated through the real steps (letter, password, e-mail code)."""
    patient = patient or make_patient()
    _, code = accounts.patient_letter_issue(patient=patient)
    activation = accounts.activation_start(terms_version="2020-01")
    assert accounts.activation_code(
        activation=activation, matricule=patient.matricule, code=code, client_address="192.0.2.10"
    ).ok
    assert accounts.activation_security(
        activation=activation, password=PASSWORD, channel="email", address=email, client_address="192.0.2.10"
    ).ok
    assert accounts.activation_confirm(
        activation=activation, code=last_code(), client_address="192.0.2.10"
    ).ok
    return PatientAccount.objects.select_related("patient", "user").get(patient=patient)


def logged_in_patient(account: PatientAccount, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    client.force_login(account.user)
    return client


def last_sequence() -> int:
    return AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0


def events_after(start: int) -> list[tuple[str, str]]:
    return list(
        AuditEvent.objects.filter(sequence__gt=start).order_by("sequence").values_list("action", "outcome")
    )
