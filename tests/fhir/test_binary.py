"""Binary: a dispensation's certified copy, linked from its MedicationDispense, read as a PDF or
as a Binary resource under the access gate; « en préparation » until the job has made it."""

import base64
import hashlib
import uuid
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.test import TestCase

from esante.audit.models import AuditEvent
from esante.dispensing.models import CertifiedCopy, Dispensation
from tests.access.factories import make_grant, make_patient, make_professional
from tests.dispensing.conftest import submit_prescription

from .conftest import USER_SCOPES, api, events, outcome_code, user_token, validate

FHIR = "application/fhir+json"


def _dispense(token: dict[str, Any], patient: Any) -> tuple[dict[str, Any], list[Any]]:
    """One unit of the first line dispensed; the certified copy's job is held back (returned)."""
    client = api(token["access_token"])
    bundle = client.get("/fhir/R4/MedicationRequest", {"patient": str(patient.public_id)}).json()
    first = sorted((e["resource"] for e in bundle["entry"]), key=lambda r: r["id"])[0]
    body = {
        "resourceType": "MedicationDispense",
        "status": "completed",
        "authorizingPrescription": [{"reference": f"MedicationRequest/{first['id']}"}],
        "quantity": {"value": 1},
    }
    with TestCase.captureOnCommitCallbacks() as jobs:
        response = client.post("/fhir/R4/MedicationDispense", body, content_type=FHIR)
    assert response.status_code == 201, response.content
    return dict(response.json()), list(jobs)


@pytest.fixture
def dispensed(db: Any, pharmacist: Any, token: dict[str, Any]) -> tuple[dict[str, Any], list[Any], Any]:
    patient = make_patient()
    submit_prescription(patient)
    make_grant(pharmacist, patient)
    resource, jobs = _dispense(token, patient)
    return resource, jobs, patient


def _binary_url(resource: dict[str, Any]) -> str:
    [link] = resource["supportingInformation"]
    assert link["reference"] == f"Binary/{resource['id']}"
    return f"/fhir/R4/{link['reference']}"


def _copy_events() -> list[tuple[str, str]]:
    return [(e.outcome, e.object_id) for e in events("dispensation.copy")]


@pytest.mark.django_db
def test_pending_then_the_pdf_and_the_binary_resource(
    dispensed: tuple[dict[str, Any], list[Any], Any], token: dict[str, Any], software: Any
) -> None:
    resource, jobs, _ = dispensed
    client = api(token["access_token"])
    url = _binary_url(resource)
    pending = client.get(url, headers={"Accept": "application/pdf"})
    assert pending.status_code == 404 and outcome_code(pending) == "copy-pending"
    assert "en préparation" in pending.json()["issue"][0]["diagnostics"]
    assert pending["Retry-After"] == "5"
    assert _copy_events() == []  # nothing was read

    for run in jobs:
        run()
    copy = CertifiedCopy.objects.get()
    pdf = client.get(url, headers={"Accept": "application/pdf"})
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF") and hashlib.sha256(pdf.content).hexdigest() == copy.pdf_sha256
    assert pdf["X-Content-Type-Options"] == "nosniff" and pdf["Cache-Control"] == "no-store"
    as_resource = client.get(url, headers={"Accept": FHIR})
    assert as_resource.status_code == 200 and as_resource["Content-Type"].startswith(FHIR)
    body = as_resource.json()
    validate(body)
    assert (body["resourceType"], body["id"], body["contentType"]) == (
        "Binary",
        resource["id"],
        "application/pdf",
    )
    with default_storage.open(copy.pdf.name, "rb") as fh:
        assert base64.b64decode(body["data"]) == fh.read()
    assert client.get(url, {"_format": "json"}, headers={"Accept": "*/*"}).json()["resourceType"] == "Binary"
    assert _copy_events() == [("success", str(copy.public_id))] * 3
    [first, *_] = events("dispensation.copy")
    assert first.details["via"]["client"] == software.client_id
    assert first.patient_id == Dispensation.objects.get().prescription.document.patient_id


@pytest.mark.django_db
def test_an_unacceptable_format_is_406_and_reads_nothing(
    dispensed: tuple[dict[str, Any], list[Any], Any], token: dict[str, Any]
) -> None:
    resource, jobs, _ = dispensed
    for run in jobs:
        run()
    before = AuditEvent.objects.count()
    response = api(token["access_token"]).get(_binary_url(resource), headers={"Accept": "text/html"})
    assert response.status_code == 406 and outcome_code(response) == "not-acceptable"
    xml = api(token["access_token"]).get(_binary_url(resource), {"_format": "xml"}, headers={"Accept": "*/*"})
    assert xml.status_code == 406 and outcome_code(xml) == "not-acceptable"
    assert AuditEvent.objects.count() == before


@pytest.mark.django_db
def test_without_a_grant_or_unknown_it_is_the_same_404(
    dispensed: tuple[dict[str, Any], list[Any], Any], software: Any
) -> None:
    resource, jobs, _ = dispensed
    for run in jobs:
        run()
    stranger = api(user_token(software, make_professional("pharmacist"))["access_token"])
    forbidden = stranger.get(_binary_url(resource), headers={"Accept": "application/pdf"})
    missing = stranger.get(f"/fhir/R4/Binary/{uuid.uuid4()}", headers={"Accept": "application/pdf"})
    assert forbidden.status_code == missing.status_code == 404
    assert forbidden.json() == missing.json()
    assert outcome_code(forbidden) == "not-found"
    assert b"%PDF" not in forbidden.content
    # Each refusal traced: the copy's as a copy download, the unknown id's as a document read
    # (any Binary id that is no dispensation's is a submitted document's, or nobody's).
    assert [outcome for outcome, _ in _copy_events()] == ["refused"]
    assert [e.outcome for e in events("document.content")] == ["refused"]


@pytest.mark.django_db
def test_a_token_without_the_binary_scope_is_403(
    dispensed: tuple[dict[str, Any], list[Any], Any], software: Any, pharmacist: Any
) -> None:
    resource, jobs, _ = dispensed
    for run in jobs:
        run()
    scopes = " ".join(scope for scope in USER_SCOPES if scope != "user/Binary.r")
    narrow = api(user_token(software, pharmacist, scope=scopes)["access_token"])
    response = narrow.get(_binary_url(resource), headers={"Accept": "application/pdf"})
    assert response.status_code == 403 and 'scope="user/Binary.r"' in response["WWW-Authenticate"]
    assert _copy_events() == []


@pytest.mark.django_db
def test_a_copy_whose_bytes_changed_is_refused_and_traced(
    dispensed: tuple[dict[str, Any], list[Any], Any], token: dict[str, Any]
) -> None:
    resource, jobs, _ = dispensed
    for run in jobs:
        run()
    copy = CertifiedCopy.objects.get()
    path = default_storage.path(copy.pdf.name)
    with open(path, "r+b") as fh:  # one byte changed, the size kept
        first = fh.read(1)
        fh.seek(0)
        fh.write(bytes([first[0] ^ 1]))
    for accept in ("application/pdf", FHIR):
        response = api(token["access_token"]).get(_binary_url(resource), headers={"Accept": accept})
        assert response.status_code == 500 and outcome_code(response) == "content-altered"
        assert b"%PDF" not in response.content and b"JVBER" not in response.content
    # Refused before the download was recorded; each refusal is an integrity event.
    assert _copy_events() == []
    assert [e.outcome for e in events("storage.integrity")] == ["failure", "failure"]
