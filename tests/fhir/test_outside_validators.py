"""Every kind of response the API gives, checked by two FHIR validators nobody here wrote
(FHIR.js and Medplum, from the npm registry, run offline: ``tests/fhir/outside.py``).

The pharmacist's day and the eService's submission produce real responses; each is written to a
directory, and both validators must find no error in any of them (documented false positives
aside: ``outside.FALSE_POSITIVES``). A second test proves the validators do find errors."""

import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from django.test import Client, TestCase

from esante.documents.models import Prescription
from tests.access.factories import make_patient
from tests.dispensing.conftest import submit_prescription

from . import outside
from .conftest import api, validate
from .test_submission import _bundle

FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    outside.validators_ready()
    return tmp_path


def _keep(corpus: Path, response: Any, status: int, name: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/fhir+json"), response["Content-Type"]
    body = dict(response.json())
    validate(body)
    outside.write(corpus, body, name)
    return body


@pytest.mark.django_db
def test_every_kind_of_response_passes_both_validators(
    corpus: Path, token: dict[str, Any], eservices_token: str
) -> None:
    patient = make_patient()
    prescription: Prescription = submit_prescription(patient)
    client = api(token["access_token"])
    found = _keep(
        corpus,
        client.post(
            "/fhir/R4/Patient/_search",
            urllib.parse.urlencode({"identifier": f"urn:oid:1.3.182.4.4|{patient.matricule}"}),
            content_type=FORM,
        ),
        200,
        "Patient-searchset",
    )
    patient_id = found["entry"][0]["resource"]["id"]
    parameters = [
        {"name": "motif", "valueString": "Délivrance d'une prescription"},
        {"name": "mode", "valueCode": "care"},
        {"name": "conditionsAccepted", "valueBoolean": True},
    ]
    _keep(
        corpus,
        client.post(
            f"/fhir/R4/Patient/{patient_id}/$declare-access",
            {"resourceType": "Parameters", "parameter": parameters},
            content_type="application/fhir+json",
        ),
        200,
        "Parameters-declare-access",
    )
    _keep(corpus, client.get(f"/fhir/R4/Patient/{patient_id}"), 200, "Patient-read")
    documents = _keep(
        corpus,
        client.get("/fhir/R4/DocumentReference", {"patient": patient_id}),
        200,
        "DocumentReference-searchset",
    )
    document_id = documents["entry"][0]["resource"]["id"]
    assert document_id == str(prescription.document.public_id)
    _keep(corpus, client.get(f"/fhir/R4/DocumentReference/{document_id}"), 200, "DocumentReference-read")
    requests = _keep(
        corpus,
        client.get("/fhir/R4/MedicationRequest", {"patient": patient_id}),
        200,
        "MedicationRequest-searchset",
    )
    first = requests["entry"][0]["resource"]
    dispense = {
        "resourceType": "MedicationDispense",
        "status": "completed",
        "authorizingPrescription": [{"reference": f"MedicationRequest/{first['id']}"}],
        "quantity": {"value": 1},
    }
    with TestCase.captureOnCommitCallbacks(execute=True):
        created = _keep(
            corpus,
            client.post("/fhir/R4/MedicationDispense", dispense, content_type="application/fhir+json"),
            201,
            "MedicationDispense-create",
        )
    withdrawal = {
        "resourceType": "MedicationDispense",
        "id": created["id"],
        "status": "entered-in-error",
        "statusReasonCodeableConcept": {"text": "Erreur de saisie"},
    }
    _keep(
        corpus,
        client.put(
            f"/fhir/R4/MedicationDispense/{created['id']}", withdrawal, content_type="application/fhir+json"
        ),
        200,
        "MedicationDispense-withdrawn",
    )
    _keep(corpus, client.get("/fhir/R4/AuditEvent"), 200, "AuditEvent-searchset")
    _keep(corpus, Client().get("/fhir/R4/metadata"), 200, "CapabilityStatement")
    # OperationOutcomes: missing, invalid parameter, a business rule, no token.
    _keep(corpus, client.get(f"/fhir/R4/DocumentReference/{patient_id}"), 404, "OperationOutcome-404")
    _keep(
        corpus,
        client.get("/fhir/R4/DocumentReference", {"patient": patient_id, "date": "demain"}),
        400,
        "OperationOutcome-400",
    )
    _keep(
        corpus,
        client.post(
            "/fhir/R4/MedicationDispense",
            {**dispense, "quantity": {"value": 999}},
            content_type="application/fhir+json",
        ),
        409,
        "OperationOutcome-409",
    )
    _keep(corpus, Client().get("/fhir/R4/Patient"), 401, "OperationOutcome-401")
    _keep(
        corpus,
        api(eservices_token).post(
            "/fhir/R4/", _bundle(patient, b"Historique."), content_type="application/fhir+json"
        ),
        200,
        "Bundle-transaction-response",
    )
    names = sorted(path.name.rsplit("-", 1)[0] for path in corpus.glob("*.json"))
    assert len(names) == 15, names
    assert outside.errors(corpus) == []


@pytest.mark.django_db
def test_the_validators_find_errors(corpus: Path) -> None:
    """A validator that cannot fail proves nothing: each one reports what is wrong here."""
    outside.write(corpus, {"resourceType": "Patient", "gender": "féminin"}, "Patient-bad-code")
    outside.write(corpus, {"resourceType": "Patient", "birthDate": "2020-13-45"}, "Patient-bad-date")
    outside.write(
        corpus, {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]}, "Outcome-no-code"
    )
    outside.write(corpus, {"resourceType": "Patient", "nom": "Pig"}, "Patient-unknown-element")
    outside.write_xml(
        corpus, b'<Patient xmlns="http://hl7.org/fhir"><gender value="f"/></Patient>', "Xml-bad-code"
    )
    found = {(issue["file"].rsplit("-", 1)[0], issue["validator"]) for issue in outside.errors(corpus)}
    assert ("Xml-bad-code", "fhir.js") in found  # XML responses are read, then checked
    assert ("Patient-bad-code", "fhir.js") in found  # a required binding (AdministrativeGender)
    assert ("Patient-bad-date", "medplum") in found
    assert {("Outcome-no-code", "fhir.js"), ("Outcome-no-code", "medplum")} <= found
    assert {("Patient-unknown-element", "fhir.js"), ("Patient-unknown-element", "medplum")} <= found
