"""MedicationRequest: the lines of a patient's prescriptions with what remains to deliver."""

from typing import Any

import pytest

from esante.dispensing.services import prescription_mark_dispensed
from tests.access.factories import make_grant, make_patient
from tests.dispensing.conftest import submit_prescription

from .conftest import api, events, outcome_code, validate


@pytest.fixture
def prescribed(db: Any, pharmacist: Any) -> dict[str, Any]:
    patient = make_patient()
    first = submit_prescription(patient, document_id="RX-1")
    second = submit_prescription(patient, document_id="RX-2")
    make_grant(pharmacist, patient)
    prescription_mark_dispensed(
        prescription=first, pharmacist=pharmacist, kind="full", based_on_version=0, follow_up=False
    )
    return {"patient": patient, "dispensed": first, "open": second}


@pytest.mark.django_db
def test_lines_with_remaining_quantities(
    token: dict[str, Any], prescribed: dict[str, Any], software: Any
) -> None:
    patient = prescribed["patient"]
    response = api(token["access_token"]).get(
        "/fhir/R4/MedicationRequest", {"patient": str(patient.public_id)}
    )
    assert response.status_code == 200
    body = response.json()
    validate(body)
    assert body["total"] == 4
    by_status: dict[str, list[dict[str, Any]]] = {}
    for entry in body["entry"]:
        by_status.setdefault(entry["resource"]["status"], []).append(entry["resource"])
    assert len(by_status["completed"]) == 2 and len(by_status["active"]) == 2
    line = by_status["active"][0]
    assert line["id"].startswith(str(prescribed["open"].document.public_id))
    remaining = line["extension"][0]["valueQuantity"]["value"]
    assert remaining == line["dispenseRequest"]["quantity"]["value"] > 0
    assert by_status["completed"][0]["extension"][0]["valueQuantity"]["value"] == 0
    active = (
        api(token["access_token"])
        .get("/fhir/R4/MedicationRequest", {"patient": str(patient.public_id), "status": "active"})
        .json()
    )
    assert active["total"] == 2
    [event] = events("prescription.search")[-1:]
    assert event.details["via"]["client"] == software.client_id


@pytest.mark.django_db
def test_without_grant_404_and_bad_status_400(token: dict[str, Any], prescribed: dict[str, Any]) -> None:
    stranger = make_patient(birth_name="Autre")
    submit_prescription(stranger, document_id="RX-9")
    client = api(token["access_token"])
    response = client.get("/fhir/R4/MedicationRequest", {"patient": str(stranger.public_id)})
    assert response.status_code == 404 and outcome_code(response) == "not-found"
    assert stranger.matricule not in response.content.decode()
    assert [(e.action, e.outcome) for e in events("prescription.search")] == [
        ("prescription.search", "refused")
    ]
    before = len(events())
    bad = client.get(
        "/fhir/R4/MedicationRequest", {"patient": str(prescribed["patient"].public_id), "status": "draft"}
    )
    assert bad.status_code == 400 and outcome_code(bad) == "invalid-status"
    assert len(events()) == before
