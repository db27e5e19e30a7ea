"""The access matrix by URL: every patient-scoped route of the URL conf, against every refusal state.

A patient-scoped route is one whose URL names a patient (``public_id``); the list comes from the
URL conf, so a route added later joins the matrix by itself. For each route, GET and POST, and for
each state in which a professional must see nothing, the answer is the same 404 as for a patient
that does not exist (byte for byte, CSRF tokens aside), no patient data is in it, and nothing is
written but refusal events. A positive control proves each route does serve the pharmacist who
holds the access, so the 404s are refusals, not broken routes.
"""

import datetime
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client, TestCase
from django.utils import timezone

from esante.access.models import AccessGrant, PatientBlock, RecordOpening
from esante.accounts.models import Professional, User
from esante.audit.models import AuditEvent
from esante.dispensing.models import CertifiedCopy, Dispensation
from esante.dispensing.services import prescription_mark_dispensed
from esante.documents.models import Document
from esante.patients.models import Patient
from tests.access.factories import make_grant, make_patient, make_professional
from tests.dispensing.conftest import submit_prescription

from .routes import Route, all_routes, concrete

PATIENT_ROUTES = [route for route in all_routes() if route.patient_scoped]
# The access dialog is where a professional who found the patient declares a link: it is not
# refused to someone who searched, so it is in the matrix for the states where no search was made.
DIALOG = "access:dialog"
TOKEN = re.compile(rb'"X-CSRFToken": "[^"]*"|name="csrfmiddlewaretoken" value="[^"]*"')


def test_the_matrix_covers_every_patient_scoped_route() -> None:
    names = {route.name for route in PATIENT_ROUTES}
    assert {
        "documents:record",
        "access:dialog",
        "documents:viewer",
        "documents:content",
        "dispensing:dispense",
        "dispensing:withdraw",
        "dispensing:copy",
        "dispensing:copy_state",
    } <= names


def no_grant(pro: Professional, patient: Patient) -> None:
    return None


def expired(pro: Professional, patient: Patient) -> None:
    now = timezone.now()
    make_grant(
        pro, patient, granted_at=now - datetime.timedelta(days=2), expires_at=now - datetime.timedelta(days=1)
    )


def revoked(pro: Professional, patient: Patient) -> None:
    make_grant(pro, patient, revoked_at=timezone.now())


def blocked_by_the_patient(pro: Professional, patient: Patient) -> None:
    make_grant(pro, patient)
    PatientBlock.objects.create(patient=patient, professional=pro)


def record_closed(pro: Professional, patient: Patient) -> None:
    make_grant(pro, patient)
    Patient.objects.filter(pk=patient.pk).update(dossier_state=Patient.DossierState.CLOSED)


def record_opposed(pro: Professional, patient: Patient) -> None:
    make_grant(pro, patient)
    Patient.objects.filter(pk=patient.pk).update(dossier_state=Patient.DossierState.OPPOSED)


def other_patients_grant(pro: Professional, patient: Patient) -> None:
    make_grant(pro, make_patient(birth_name="Autre", first_names="Patient"))


STATES: list[Callable[[Professional, Patient], None]] = [
    no_grant,
    expired,
    revoked,
    blocked_by_the_patient,
    record_closed,
    record_opposed,
    other_patients_grant,
]


@pytest.fixture
def record(db: None) -> dict[str, Any]:
    """Peppa with a prescription dispensed (with its certified copy) by a pharmacist with access."""
    patient = make_patient()
    prescription = submit_prescription(patient)
    pharmacist = make_professional("pharmacist")
    make_grant(pharmacist, patient)
    with TestCase.captureOnCommitCallbacks(execute=True):
        dispensation = prescription_mark_dispensed(
            prescription=prescription, pharmacist=pharmacist, kind="full", based_on_version=0
        )
    assert CertifiedCopy.objects.filter(dispensation=dispensation).exists()
    return {
        "patient": patient,
        "pharmacist": pharmacist,
        "values": {
            "public_id": patient.public_id,
            "document_id": prescription.document.public_id,
            "dispensation_id": dispensation.public_id,
        },
    }


def _path(route: Route, values: dict[str, Any]) -> str:
    path = concrete(route, values)
    assert path is not None, route
    return path


def _missing(route: Route) -> str:
    return _path(route, {name: uuid.uuid4() for name in route.parameters})


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _no_patient_data(body: bytes, patient: Patient) -> None:
    # The masked CSRF tokens are random letters and digits: "Pig" turns up in one now and then.
    body = TOKEN.sub(b"", body)
    for value in (patient.birth_name, patient.first_names, patient.matricule, patient.dossier_number):
        assert value.encode() not in body, value


def _written() -> tuple[int, ...]:
    return (
        AccessGrant.objects.count(),
        RecordOpening.objects.count(),
        Dispensation.objects.filter(withdrawn_at__isnull=False).count(),
        Dispensation.objects.count(),
        CertifiedCopy.objects.count(),
        Document.objects.count(),
        Document.objects.filter(hidden_by_patient=True).count(),
    )


@pytest.mark.django_db
def test_the_pharmacist_with_access_is_served_by_every_route(record: dict[str, Any]) -> None:
    client = _client(record["pharmacist"].user)
    for route in PATIENT_ROUTES:
        response = client.get(_path(route, record["values"]))
        # The access dialog sends a professional who holds an access on to the record.
        expected = {DIALOG: {302}}.get(route.name, {200})
        assert response.status_code in expected, (route.name, response.status_code)
        if route.name in ("documents:content", "dispensing:copy"):
            # Stored documents (the prescription, the certified copy) never run as active content.
            assert "sandbox" in response["Content-Security-Policy"].split("; "), route.name
            assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.django_db
@pytest.mark.parametrize("state", STATES, ids=lambda state: state.__name__)
@pytest.mark.parametrize("profession", ["pharmacist", "doctor"])
def test_a_refused_professional_gets_what_a_missing_patient_gets(
    record: dict[str, Any], state: Callable[[Professional, Patient], None], profession: str
) -> None:
    patient = record["patient"]
    pro = make_professional(profession)
    state(pro, patient)
    client = _client(pro.user)
    written = _written()
    start = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first()
    for route in PATIENT_ROUTES:
        if route.name == DIALOG and state in (expired, revoked, other_patients_grant):
            continue  # a professional who held a link may declare a new one: the dialog is shown
        for method in ("get", "post"):
            send = getattr(client, method)
            forbidden = send(
                _path(route, record["values"]), {"kind": "full", "state_version": 1, "accept": "on"}
            )
            missing = send(_missing(route), {"kind": "full", "state_version": 1, "accept": "on"})
            # 405 where the route does not take the method at all: decided before any patient is read.
            assert forbidden.status_code == missing.status_code, (route.name, method)
            assert forbidden.status_code in (404, 405), (route.name, method, forbidden.status_code)
            assert TOKEN.sub(b"", forbidden.content) == TOKEN.sub(b"", missing.content), (route.name, method)
            _no_patient_data(forbidden.content, patient)
    assert _written() == written
    events = AuditEvent.objects.filter(sequence__gt=start)
    assert events.exists()
    assert set(events.values_list("outcome", flat=True)) == {AuditEvent.Outcome.REFUSED}
    assert set(events.values_list("actor", flat=True)) == {pro.user.pk}


@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_the_login_and_see_nothing(record: dict[str, Any]) -> None:
    client = Client()
    for route in PATIENT_ROUTES:
        for method in ("get", "post"):
            response = getattr(client, method)(_path(route, record["values"]))
            if response.status_code == 405:  # the route does not take the method at all
                continue
            assert response.status_code == 302, (route.name, method)
            assert response["Location"].startswith("/professionnel/connexion/")
            _no_patient_data(response.content, record["patient"])


@pytest.mark.django_db
@pytest.mark.parametrize("state", [Professional.State.SUSPENDED, Professional.State.REGISTERED])
def test_an_inactive_account_gets_403_everywhere_even_with_a_grant(
    record: dict[str, Any], state: str
) -> None:
    pro = make_professional("pharmacist", state=state)
    make_grant(pro, record["patient"])
    client = _client(pro.user)
    written = _written()
    for route in PATIENT_ROUTES:
        for method in ("get", "post"):
            response = getattr(client, method)(_path(route, record["values"]))
            assert response.status_code in (403, 405), (route.name, method, response.status_code)
            _no_patient_data(response.content, record["patient"])
    assert _written() == written
