"""ITI-65 Provide Document Bundle with a SMART Backend Services token: all or nothing, the
transaction-response in request order, idempotent resubmission, refusals traced."""

import base64
import uuid
from typing import Any

import pytest

from esante.documents.models import Document
from tests.access.factories import make_patient
from tests.dispensing.conftest import LINES, Person, cda, prescription_cda

from .conftest import api, events, outcome_code, validate


def _bundle(
    patient: Any,
    content: bytes,
    media_type: str = "text/plain",
    master: str = "DOC-1",
    loinc: str = "10160-0",
) -> dict[str, Any]:
    binary_url = f"urn:uuid:{uuid.uuid4()}"
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": {"resourceType": "List", "status": "current",
             "mode": "working"}, "request": {"method": "POST", "url": "List"}},
            {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "request": {"method": "POST", "url": "DocumentReference"},
             "resource": {
                 "resourceType": "DocumentReference", "status": "current",
                 "masterIdentifier": {"value": master},
                 "type": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
                 "subject": {"identifier": {"system": "urn:oid:1.3.182.4.4", "value": patient.matricule}},
                 "date": "2026-11-30T10:00:00+01:00", "description": "Historique de médication",
                 "author": [{"display": "Dr Marc Weber"}],
                 "content": [{"attachment": {"contentType": media_type, "url": binary_url}}],
             }},
            {"fullUrl": binary_url, "request": {"method": "POST", "url": "Binary"},
             "resource": {"resourceType": "Binary", "contentType": media_type,
                          "data": base64.b64encode(content).decode()}},
        ],
    }  # fmt: skip


def _post(token: str, bundle: dict[str, Any]) -> Any:
    return api(token).post("/fhir/R4/", bundle, content_type="application/fhir+json")


@pytest.mark.django_db
def test_a_bundle_is_filed_and_answered_in_request_order(eservices_token: str) -> None:
    patient = make_patient()
    bundle = _bundle(patient, b"Historique.")
    response = _post(eservices_token, bundle)
    assert response.status_code == 200, response.content
    body = response.json()
    validate(body)
    assert body["type"] == "transaction-response"
    assert [e["response"]["status"] for e in body["entry"]] == ["201 Created"] * 3
    document = Document.objects.get()
    assert body["entry"][1]["response"]["location"] == f"DocumentReference/{document.public_id}"
    assert (document.patient, document.source_system, document.author_name) == (
        patient,
        "eServices",
        "Dr Marc Weber",
    )
    [event] = events("document.submit")
    assert event.outcome == "success" and event.details["via"]["channel"] == "api"
    again = _post(eservices_token, bundle).json()
    assert again["entry"][1]["response"]["status"] == "200 OK"
    assert Document.objects.count() == 1


@pytest.mark.django_db
def test_a_cda_prescription_brings_its_lines(eservices_token: str) -> None:
    import datetime

    patient = make_patient()
    content = prescription_cda(
        document_id="RX-API-1", at=datetime.datetime(2026, 11, 30, 9, 0, tzinfo=cda.LUXEMBOURG),
        patient_matricule=patient.matricule, patient=Person(patient.first_names, patient.birth_name),
        birth=patient.birth_date, sex=patient.sex, prescriber=Person("Marc", "Weber", "", "Dr"),
        organisation="Cabinet", lines=LINES,
    )  # fmt: skip
    response = _post(
        eservices_token, _bundle(patient, content, "application/hl7-cda+xml", "RX-API-1", "57833-6")
    )
    assert response.status_code == 200, response.content
    document = Document.objects.get()
    assert document.prescription.lines.count() == len(LINES)


@pytest.mark.django_db
def test_all_or_nothing(eservices_token: str) -> None:
    patient = make_patient()
    good = _bundle(patient, b"Bon.")
    bad = _bundle(make_patient(birth_name="Absent"), b"Mauvais.", master="DOC-2")
    bad["entry"][1]["resource"]["subject"]["identifier"]["value"] = "1900010100000"
    good["entry"].extend(bad["entry"][1:])
    response = _post(eservices_token, good)
    assert response.status_code == 422
    assert outcome_code(response) == "document-refused"
    assert not Document.objects.exists()
    assert [e.outcome for e in events("document.submit")] == ["refused"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "bundle",
    [
        {"resourceType": "Bundle", "type": "batch", "entry": []},
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"resource": {"resourceType": "Patient"}}],
        },
        {"resourceType": "Patient"},
    ],
)
def test_bad_bundles_are_400(eservices_token: str, bundle: dict[str, Any]) -> None:
    before = len(events())
    response = _post(eservices_token, bundle)
    assert response.status_code == 400
    outcome_code(response)
    assert len(events()) == before


@pytest.mark.django_db
def test_a_professionals_token_cannot_submit(token: dict[str, Any]) -> None:
    response = _post(token["access_token"], _bundle(make_patient(), b"x"))
    assert response.status_code == 403
    assert 'scope="system/DocumentReference.c"' in response["WWW-Authenticate"]
    assert not Document.objects.exists()


@pytest.mark.django_db
def test_the_binary_location_serves_the_documents_bytes_under_the_gate(
    eservices_token: str, token: dict[str, Any], pharmacist: Any, software: Any
) -> None:
    from tests.access.factories import make_grant, make_professional

    from .conftest import user_token

    patient = make_patient()
    body = _post(eservices_token, _bundle(patient, b"Historique de medication.")).json()
    location = body["entry"][2]["response"]["location"]
    document = Document.objects.get()
    assert location == f"Binary/{document.public_id}"
    reader = api(token["access_token"])
    # Without an access to the record: the same 404 as a Binary that does not exist, traced.
    refused = reader.get(f"/fhir/R4/{location}", headers={"Accept": "text/plain"})
    missing = reader.get(f"/fhir/R4/Binary/{uuid.uuid4()}", headers={"Accept": "text/plain"})
    assert refused.status_code == missing.status_code == 404 and refused.json() == missing.json()
    assert b"Historique" not in refused.content
    assert [e.outcome for e in events("document.content")] == ["refused", "refused"]
    make_grant(pharmacist, patient)
    content = reader.get(f"/fhir/R4/{location}", headers={"Accept": "text/plain"})
    assert content.status_code == 200 and content["Content-Type"].startswith("text/plain")
    assert b"".join(content.streaming_content) == b"Historique de medication."
    resource = reader.get(f"/fhir/R4/{location}", headers={"Accept": "application/fhir+json"})
    assert resource.status_code == 200
    validate(resource.json())
    assert (resource.json()["id"], resource.json()["contentType"]) == (str(document.public_id), "text/plain")
    assert base64.b64decode(resource.json()["data"]) == b"Historique de medication."
    # Another type than the document's own: 406, nothing read, nothing traced.
    before = len(events("document.content"))
    assert reader.get(f"/fhir/R4/{location}", headers={"Accept": "application/pdf"}).status_code == 406
    assert [e.outcome for e in events("document.content")][before:] == []
    assert [e.outcome for e in events("document.content")] == ["refused", "refused", "success", "success"]
    # A professional of the same platform without the record's access still gets nothing.
    other = api(user_token(software, make_professional("doctor"))["access_token"])
    assert other.get(f"/fhir/R4/{location}", headers={"Accept": "text/plain"}).status_code == 404
