"""The official R4 examples (``hl7.fhir.r4.examples`` 4.0.1 from the npm registry, CC0) are the
outside corpus: every Patient, DocumentReference, MedicationRequest and MedicationDispense example
is sent where the API accepts writes, and is either accepted (and reads back as sent) or refused
with a precise OperationOutcome in French — never a 500, and nothing written but the refusal's
own audit event.

- MedicationDispense ``create``: each example as published (they name the HL7 test server's
  MedicationRequests, statuses we do not record, and elements this platform does not take:
  a precise 400 naming them), then the same example reduced to what the platform records and
  pointed at one of our prescription lines (accepted, read back).
- ITI-65: each DocumentReference example in a transaction Bundle with its Binary, as published
  (its subject is the HL7 server's Patient, not a matricule: refused), then with the subject
  named by matricule and a document type of the platform (accepted, read back).
- Patient and MedicationRequest: the API takes no writes of them (PDQm and the prescriptions
  are read-only here): ``create`` answers 405, and as an ITI-65 entry 400.
"""

import base64
import copy
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.test import TestCase
from django.utils import timezone

from esante.audit.models import AuditEvent
from esante.dispensing.models import Dispensation
from esante.documents.models import Document
from tests.access.factories import make_grant, make_patient
from tests.dispensing.conftest import submit_prescription

from . import outside
from .conftest import api, events, validate

FHIR = "application/fhir+json"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
#: A diagnostic in French (the words any sentence of ours has; no English message has them).
FRENCH = re.compile(r"\b(le|la|les|un|une|du|des|de|doit|est|aucune?|ni|pas|non|n'est)\b", re.IGNORECASE)


def _examples(resource_type: str) -> list[Any]:
    """The examples of one resource type (the package names each file ``<type>-<id>.json``);
    installs the package on first use."""
    if outside.missing() is not None:
        return [pytest.param(None, id="package-missing")]
    found = []
    for path in sorted(outside.EXAMPLES.glob(f"{resource_type}-*.json")):
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if isinstance(body, dict) and body.get("resourceType") == resource_type:
            found.append(pytest.param(path, id=path.stem))
    return found


def _load(path: Path | None) -> dict[str, Any]:
    if path is None:
        outside.validators_ready()  # skips, or fails in CI, saying what is missing
    assert path is not None
    return dict(json.loads(path.read_text(encoding="utf-8")))


def _refused(response: Any, statuses: tuple[int, ...] = (400, 422)) -> str:
    """A precise refusal: one of ``statuses``, an OperationOutcome with a stable code and a
    French diagnostic; returns the code."""
    assert response.status_code in statuses, (response.status_code, response.content)
    assert response["Content-Type"].startswith(FHIR)
    body = response.json()
    validate(body)
    [issue] = body["issue"]
    assert issue["severity"] == "error" and issue["code"] in ("invalid", "business-rule", "not-supported")
    assert FRENCH.search(issue["diagnostics"]), issue["diagnostics"]
    return str(issue["details"]["coding"][0]["code"])


def _refusals_only(before: int) -> None:
    """Since ``before``, only refusals were traced."""
    assert [e.outcome for e in AuditEvent.objects.filter(sequence__gt=before)] == [
        "refused" for _ in AuditEvent.objects.filter(sequence__gt=before)
    ]


def _last_sequence() -> int:
    return AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0


# --- MedicationDispense create ------------------------------------------------------------------

#: What the platform records of a dispensation (``medication_dispense._ALLOWED``, less the
#: narrative and metadata an example carries about itself).
_RECORDED = {"resourceType", "status", "authorizingPrescription", "quantity", "subject",
             "medicationCodeableConcept", "whenHandedOver", "performer"}  # fmt: skip


@pytest.fixture
def line(db: Any, pharmacist: Any, token: dict[str, Any]) -> dict[str, Any]:
    """A MedicationRequest of ours the pharmacist may dispense."""
    patient = make_patient()
    submit_prescription(patient)
    make_grant(pharmacist, patient)
    bundle = api(token["access_token"]).get("/fhir/R4/MedicationRequest", {"patient": str(patient.public_id)})
    return dict(sorted((e["resource"] for e in bundle.json()["entry"]), key=lambda r: r["id"])[0])


@pytest.mark.django_db
@pytest.mark.parametrize("path", _examples("MedicationDispense"))
def test_medication_dispense_examples(path: Path | None, token: dict[str, Any], line: dict[str, Any]) -> None:
    example = _load(path)
    client = api(token["access_token"])
    before = _last_sequence()
    as_published = client.post("/fhir/R4/MedicationDispense", example, content_type=FHIR)
    code = _refused(as_published)
    assert code in ("unsupported-element", "invalid-status", "invalid-reference", "invalid-quantity"), code
    assert not Dispensation.objects.exists()
    _refusals_only(before)

    # Reduced to what the platform records, about one of our lines: accepted, and read back.
    reduced = {key: copy.deepcopy(value) for key, value in example.items() if key in _RECORDED}
    reduced["status"] = "completed"
    reduced["authorizingPrescription"] = [{"reference": f"MedicationRequest/{line['id']}"}]
    reduced["subject"] = line["subject"]
    reduced["quantity"] = {**reduced.get("quantity", {}), "value": 1}
    reduced.pop("medicationCodeableConcept", None)  # another code system's medicine: not ours
    reduced.pop("performer", None)  # the performer is the token's pharmacist, always
    if "whenHandedOver" in reduced:  # the example's date precedes our prescription: handed over now
        reduced["whenHandedOver"] = timezone.now().isoformat()
    with TestCase.captureOnCommitCallbacks(execute=True):
        accepted = client.post("/fhir/R4/MedicationDispense", reduced, content_type=FHIR)
    assert accepted.status_code == 201, accepted.content
    back = validate(accepted.json())
    assert back.status == "completed" and back.quantity.value == 1
    assert back.authorizingPrescription[0].reference == f"MedicationRequest/{line['id']}"
    assert back.subject.reference == line["subject"]["reference"]
    assert Dispensation.objects.count() == 1
    assert [e.outcome for e in events("prescription.dispense")] == ["success"]


@pytest.mark.django_db
def test_a_dispense_about_another_patient_or_medicine_is_refused(
    token: dict[str, Any], line: dict[str, Any]
) -> None:
    """Elements the platform takes must agree with the prescription line they name."""
    client = api(token["access_token"])
    body = {
        "resourceType": "MedicationDispense",
        "status": "completed",
        "authorizingPrescription": [{"reference": f"MedicationRequest/{line['id']}"}],
        "quantity": {"value": 1},
    }
    before = _last_sequence()
    other = client.post(
        "/fhir/R4/MedicationDispense",
        {**body, "subject": {"reference": f"Patient/{uuid.uuid4()}"}},
        content_type=FHIR,
    )
    assert _refused(other, (400,)) == "subject-mismatch"
    coding = [{"system": "urn:oid:1.3.182.5.47", "code": "9999999"}]
    medicine = client.post(
        "/fhir/R4/MedicationDispense",
        {**body, "medicationCodeableConcept": {"coding": coding}},
        content_type=FHIR,
    )
    assert _refused(medicine, (400,)) == "medication-mismatch"
    assert not Dispensation.objects.exists()
    _refusals_only(before)


# --- ITI-65 with DocumentReference -------------------------------------------------------------


def _provide(reference: dict[str, Any], content: bytes) -> dict[str, Any]:
    """A transaction Bundle (List, the DocumentReference, a Binary at its attachment's URL)."""
    attachment = reference["content"][0]["attachment"]
    binary_url = attachment.get("url") or f"urn:uuid:{uuid.uuid4()}"
    attachment["url"] = binary_url
    binary = {"resourceType": "Binary", "contentType": attachment.get("contentType", "text/plain"),
              "data": base64.b64encode(content).decode()}  # fmt: skip
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "request": {"method": "POST", "url": "List"},
             "resource": {"resourceType": "List", "status": "current", "mode": "working"}},
            {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "request": {"method": "POST", "url": "DocumentReference"},
             "resource": reference},
            {"fullUrl": binary_url, "request": {"method": "POST", "url": "Binary"}, "resource": binary},
        ],
    }  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize("path", _examples("DocumentReference"))
def test_document_reference_examples(
    path: Path | None, eservices_token: str, token: dict[str, Any], pharmacist: Any
) -> None:
    example = _load(path)
    submitter = api(eservices_token)
    before = _last_sequence()
    published = submitter.post("/fhir/R4/", _provide(copy.deepcopy(example), b"Physical."), content_type=FHIR)
    _refused(published)
    assert not Document.objects.exists()
    _refusals_only(before)

    # Named by matricule, with a type of the platform and a plain-text attachment: accepted. Its
    # level becomes N: a V document is for its author alone, and this one's is not registered.
    patient = make_patient()
    adapted = copy.deepcopy(example)
    adapted["securityLabel"] = [{"coding": [{"system": CONFIDENTIALITY, "code": "N"}]}]
    adapted["subject"] = {"identifier": {"system": "urn:oid:1.3.182.4.4", "value": patient.matricule}}
    adapted["type"] = {"coding": [{"system": "http://loinc.org", "code": "10160-0"}]}
    adapted["content"][0]["attachment"]["contentType"] = "text/plain"
    response = submitter.post("/fhir/R4/", _provide(adapted, b"Physical examination."), content_type=FHIR)
    assert response.status_code == 200, response.content
    body = response.json()
    validate(body)
    assert [e["response"]["status"] for e in body["entry"]] == ["201 Created"] * 3
    document_id = body["entry"][1]["response"]["location"].rsplit("/", 1)[-1]
    make_grant(pharmacist, patient)
    read = api(token["access_token"]).get(f"/fhir/R4/DocumentReference/{document_id}")
    assert read.status_code == 200, read.content
    back = read.json()
    validate(back)
    assert back["description"] == example["description"]
    assert back["securityLabel"] == adapted["securityLabel"]
    assert back["author"][0]["display"] == "Gerald Smitty"  # the contained Practitioner it names
    assert back["date"][:19] == "2005-12-23T22:43:41"  # 2005-12-24T09:43:41+11:00, in UTC
    assert back["subject"]["reference"] == f"Patient/{patient.public_id}"
    assert Document.objects.get().external_id == example["masterIdentifier"]["value"]
    assert [e.outcome for e in events("document.submit")] == ["refused", "success"]


# --- Patient and MedicationRequest: no writes --------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", [*_examples("Patient"), *_examples("MedicationRequest")])
def test_patient_and_medication_request_examples_are_refused(
    path: Path | None, token: dict[str, Any], eservices_token: str
) -> None:
    example = _load(path)
    before = _last_sequence()
    created = api(token["access_token"]).post(
        f"/fhir/R4/{example['resourceType']}", example, content_type=FHIR
    )
    assert created.status_code == 405, created.content
    body = created.json()
    validate(body)
    assert body["issue"][0]["details"]["coding"][0]["code"] == "method-not-allowed"
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": example,
                         "request": {"method": "POST", "url": example["resourceType"]}}]}  # fmt: skip
    assert (
        _refused(api(eservices_token).post("/fhir/R4/", bundle, content_type=FHIR), (400,)) == "invalid-entry"
    )
    assert not Document.objects.exists()
    _refusals_only(before)
