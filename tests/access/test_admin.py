"""The operators' admin of accesses: opening a grant, a record opening or a journal is traced;
the journal's CSV export cannot smuggle a spreadsheet formula."""

import csv
import io

import pytest
from django.test import Client
from django.urls import reverse

from esante.access.admin import _cell
from esante.access.models import RecordOpening
from esante.accounts.models import Professional, User
from esante.audit.catalogue import AuditAction
from esante.audit.models import AuditEvent
from esante.audit.services import audit_record
from esante.patients.models import Patient
from tests.conftest import otp_verified_login

from .factories import make_grant

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client: Client) -> User:
    user = User.objects.create_superuser(username="operateur", password=None)
    otp_verified_login(client, user)
    return user


def test_opening_a_grant_is_traced(
    client: Client, operator: User, pharmacist: Professional, patient: Patient
) -> None:
    grant = make_grant(pharmacist, patient)
    response = client.get(
        reverse("admin:access_accessgrant_change", args=[grant.pk]), REMOTE_ADDR="192.0.2.9"
    )
    assert response.status_code == 200
    [event] = AuditEvent.objects.all()
    assert (event.action, event.actor, event.patient, event.object_type, event.object_id) == (
        "access.admin.read",
        operator,
        patient,
        "accessgrant",
        str(grant.pk),
    )
    assert event.client_address == "192.0.2.9"


def test_opening_a_record_opening_is_traced(
    client: Client, operator: User, pharmacist: Professional, patient: Patient
) -> None:
    grant = make_grant(pharmacist, patient)
    opening = RecordOpening.objects.create(professional=pharmacist, patient=patient, grant=grant)
    response = client.get(reverse("admin:access_recordopening_change", args=[opening.pk]))
    assert response.status_code == 200
    assert list(AuditEvent.objects.values_list("action", "patient", "object_type", "object_id")) == [
        ("access.admin.read", patient.pk, "recordopening", str(opening.pk))
    ]


def test_opening_a_journal_is_traced(client: Client, operator: User, patient: Patient) -> None:
    response = client.get(reverse("admin:access_patientjournal_change", args=[patient.pk]))
    assert response.status_code == 200
    assert list(AuditEvent.objects.values_list("action", "patient")) == [("patient.admin.read", patient.pk)]


def test_lists_are_traced(client: Client, operator: User, pharmacist: Professional, patient: Patient) -> None:
    make_grant(pharmacist, patient)
    for name in ("accessgrant", "recordopening", "patientjournal"):
        assert client.get(reverse(f"admin:access_{name}_changelist")).status_code == 200
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["access.admin.read.list"] * 2 + [
        "patient.admin.read.list"
    ]


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+33 1", "'+33 1"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ('  =HYPERLINK("http://example.com")', '\'  =HYPERLINK("http://example.com")'),
        ("\t=1+1", "'\t=1+1"),
        (" \n @cmd", "' \n @cmd"),
        ("\u00a0+1", "'\u00a0+1"),
        ("Délivrance de médicaments", "Délivrance de médicaments"),
        ("a=b", "a=b"),
        ("  texte", "  texte"),
        ("", ""),
        (None, ""),
        (42, "42"),
    ],
)
def test_cell_escapes_formulas_after_leading_white_space(value: object, cell: str) -> None:
    assert _cell(value) == cell


def test_journal_export_escapes_a_motif_with_a_hidden_formula(
    client: Client, operator: User, pharmacist: Professional, patient: Patient
) -> None:
    audit_record(
        action=AuditAction.ACCESS_GRANT, actor=pharmacist.user, patient=patient, motif='  =cmd|"/c calc"!A1'
    )
    response = client.post(
        reverse("admin:access_patientjournal_changelist"),
        {"action": "export_journal", "_selected_action": [patient.pk]},
    )
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode()), delimiter=";"))
    [grant_row] = [row for row in rows if row[4] == "access.grant"]
    assert grant_row[6] == '\'  =cmd|"/c calc"!A1'
