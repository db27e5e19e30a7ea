"""FHIR for patients: a token the patient consented to reads the patient's own AuditEvents and
DocumentReferences only; nobody else's (404, nothing leaked, refusal traced); no other resource
(403 insufficient scope); professionals never obtain patient/ scopes, nor patients user/ ones."""

import urllib.parse
from typing import Any

import pytest
from django.test import Client

from esante.audit.catalogue import AuditAction
from esante.audit.models import AuditEvent
from esante.audit.services import audit_record
from esante.fhir.models import SoftwareClient
from esante.fhir.services import software_client_register
from tests.access.factories import make_patient, make_professional
from tests.dispensing.conftest import submit_prescription
from tests.fhir.conftest import AUTHORIZE, REDIRECT, TOKEN, api, authorize_query, pkce, validate

from .conftest import active_account, events_after, last_sequence, logged_in_patient

pytestmark = pytest.mark.django_db

PATIENT_SCOPES = "patient/AuditEvent.rs patient/DocumentReference.rs"


@pytest.fixture
def app(db: Any) -> SoftwareClient:
    client, _ = software_client_register(
        name="MaSanté",
        organisation="Éditeur d'applications",
        kind="interactive",
        scopes=["patient/AuditEvent.rs", "patient/DocumentReference.rs", "user/Patient.rs"],
        redirect_uris=[REDIRECT],
        public=True,
    )
    return client


def _token(browser: Client, software: SoftwareClient, scope: str = PATIENT_SCOPES) -> str:
    verifier, challenge = pkce()
    url = f"{AUTHORIZE}?{urllib.parse.urlencode(authorize_query(software, challenge, scope=scope))}"
    page = browser.get(url)
    assert page.status_code == 200, page.content
    assert "Lire votre journal d&#x27;accès" in page.content.decode()
    location = urllib.parse.urlparse(browser.post(url, {"decision": "allow"})["Location"])
    code = urllib.parse.parse_qs(location.query)["code"][0]
    response = Client().post(
        TOKEN,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": software.client_id,
            "code_verifier": verifier,
        },
    )
    assert response.status_code == 200, response.content
    return str(response.json()["access_token"])


def test_a_patient_token_reads_the_patients_own_journal_and_documents(app: SoftwareClient) -> None:
    account = active_account()
    document = submit_prescription(account.patient).document
    other = make_patient(birth_name="Wolf")
    theirs = submit_prescription(other, document_id="RX-2").document
    doctor = make_professional("doctor", last_name="Weber")
    audit_record(
        action=AuditAction.RECORD_OPEN, actor=doctor.user, patient=account.patient, client_address="10.1.2.3"
    )
    audit_record(action=AuditAction.RECORD_OPEN, actor=doctor.user, patient=other)
    software = api(_token(logged_in_patient(account), app))
    start = last_sequence()
    bundle = software.get("/fhir/R4/AuditEvent").json()
    validate(bundle)
    own = AuditEvent.objects.filter(patient=account.patient, sequence__lte=start).count()
    assert bundle["total"] == own
    entities = {
        e["resource"]["entity"][0]["what"]["reference"] for e in bundle["entry"] if "entity" in e["resource"]
    }
    assert entities == {f"Patient/{account.patient.public_id}"}
    body = str(bundle)
    assert "10.1.2.3" not in body  # the actors' addresses are not the patient's to see
    assert "WEBER Test" in body
    assert events_after(start) == [("espace.journal.read", "success")]
    read = AuditEvent.objects.get(sequence__gt=start)
    assert read.details["via"]["client"] == app.client_id
    # Documents: the patient's own, by MHD search and read.
    found = software.get("/fhir/R4/DocumentReference", {"patient": str(account.patient.public_id)}).json()
    validate(found)
    assert [e["resource"]["id"] for e in found["entry"]] == [str(document.public_id)]
    assert software.get(f"/fhir/R4/DocumentReference/{document.public_id}").status_code == 200
    content = software.get(
        f"/fhir/R4/DocumentReference/{document.public_id}/content", headers={"Accept": "*/*"}
    )
    assert content.status_code == 200 and content.getvalue().startswith(b"<?xml")
    assert str(theirs.public_id) not in str(found)


def test_a_patient_token_finds_nobody_elses_documents(app: SoftwareClient) -> None:
    account = active_account()
    other = make_patient(birth_name="Wolf")
    theirs = submit_prescription(other, document_id="RX-2").document
    software = api(_token(logged_in_patient(account), app))
    for url, params in (
        ("/fhir/R4/DocumentReference", {"patient": str(other.public_id)}),
        (f"/fhir/R4/DocumentReference/{theirs.public_id}", {}),
        (f"/fhir/R4/DocumentReference/{theirs.public_id}/content", {}),
    ):
        start = last_sequence()
        response = software.get(url, params, headers={"Accept": "*/*"})
        assert response.status_code == 404, url
        assert (
            str(theirs.public_id) not in response.content.decode() and "Wolf" not in response.content.decode()
        )
        assert events_after(start) == [("espace.not_found", "refused")], url
        assert AuditEvent.objects.get(sequence__gt=start).patient_id == account.patient_id


def test_a_patient_token_reaches_no_other_resource(app: SoftwareClient) -> None:
    account = active_account()
    software = api(_token(logged_in_patient(account), app))
    start = last_sequence()
    response = software.get("/fhir/R4/Patient", {"family": "Pig"})
    assert response.status_code == 403
    assert "insufficient_scope" in response["WWW-Authenticate"]
    assert events_after(start) == [("api.request", "refused")]


def test_consent_keeps_patient_and_professional_scopes_apart(app: SoftwareClient) -> None:
    account = active_account()
    _, challenge = pkce()
    # A patient asking for a professional's scope, a professional asking for a patient's: 403.
    patient_url = (
        f"{AUTHORIZE}?{urllib.parse.urlencode(authorize_query(app, challenge, scope='user/Patient.rs'))}"
    )
    assert logged_in_patient(account).get(patient_url).status_code == 403
    pro = Client()
    pro.force_login(make_professional().user)
    pro_url = f"{AUTHORIZE}?{urllib.parse.urlencode(authorize_query(app, challenge, scope=PATIENT_SCOPES))}"
    assert pro.get(pro_url).status_code == 403
