"""MedicationDispense create: partial, then the rest, then 409; stale If-Match 412; refusals."""

import datetime
import uuid
from typing import Any

import pytest
from django.test import TestCase
from django.utils import timezone

from esante.dispensing.models import CertifiedCopy, Dispensation
from esante.documents.models import Prescription
from esante.fhir.medication_dispense import PROFESSIONAL_SYSTEM
from esante.fhir.medication_request import MEDICINE_SYSTEM
from tests.access.factories import make_grant, make_patient, make_professional
from tests.dispensing.conftest import submit_prescription

from .conftest import api, events, outcome_code, user_token, validate


@pytest.fixture
def rx(db: Any, pharmacist: Any) -> Prescription:
    patient = make_patient()
    prescription = submit_prescription(patient)
    make_grant(pharmacist, patient)
    return prescription


def _requests(token: dict[str, Any], prescription: Prescription) -> list[dict[str, Any]]:
    bundle = (
        api(token["access_token"])
        .get("/fhir/R4/MedicationRequest", {"patient": str(prescription.document.patient.public_id)})
        .json()
    )
    return sorted((e["resource"] for e in bundle["entry"]), key=lambda r: r["id"])


def _dispense(token: dict[str, Any], request: dict[str, Any], quantity: int, **headers: str) -> Any:
    body = {
        "resourceType": "MedicationDispense",
        "status": "completed",
        "authorizingPrescription": [{"reference": f"MedicationRequest/{request['id']}"}],
        "quantity": {"value": quantity},
    }
    return api(token["access_token"]).post(
        "/fhir/R4/MedicationDispense", body, content_type="application/fhir+json", headers=headers
    )


@pytest.mark.django_db
def test_partial_then_the_rest_then_409(token: dict[str, Any], rx: Prescription, software: Any) -> None:
    first, second = _requests(token, rx)
    owed = first["extension"][0]["valueQuantity"]["value"]
    response = _dispense(token, first, 1, **{"If-Match": f'W/"{first["meta"]["versionId"]}"'})
    assert response.status_code == 201, response.content
    resource = validate(response.json())
    assert response["Location"].endswith(f"/MedicationDispense/{resource.id}")
    after = {r["id"]: r for r in _requests(token, rx)}
    assert after[first["id"]]["extension"][0]["valueQuantity"]["value"] == owed - 1
    assert _dispense(token, after[first["id"]], owed - 1).status_code == 201
    assert (
        _dispense(token, after[second["id"]], second["dispenseRequest"]["quantity"]["value"]).status_code
        == 201
    )
    rx.refresh_from_db()
    assert rx.dispensation_state == "dispensed"
    again = _dispense(token, first, 1)
    assert again.status_code == 409
    assert outcome_code(again) == "already-dispensed"
    assert Dispensation.objects.count() == 3
    outcomes = [(e.outcome, e.details.get("via", {}).get("client")) for e in events("prescription.dispense")]
    assert outcomes == [("success", software.client_id)] * 3 + [("refused", software.client_id)]


@pytest.mark.django_db
def test_create_answers_before_the_certified_copy_is_made(token: dict[str, Any], rx: Prescription) -> None:
    first, _ = _requests(token, rx)
    with TestCase.captureOnCommitCallbacks() as jobs:
        response = _dispense(token, first, 1)
    assert response.status_code == 201, response.content
    # Answered with the dispensation recorded; its copy and eDispensation document are a job's work.
    dispensation = Dispensation.objects.get()
    assert len(jobs) == 1 and not CertifiedCopy.objects.exists() and dispensation.document_id is None
    for run in jobs:
        run()
    dispensation.refresh_from_db()
    assert CertifiedCopy.objects.get().dispensation == dispensation and dispensation.document_id is not None
    assert [event.outcome for event in events("dispensation.certify")] == ["success"]


@pytest.mark.django_db
def test_stale_if_match_is_412_and_over_delivery_409(token: dict[str, Any], rx: Prescription) -> None:
    first, _ = _requests(token, rx)
    assert _dispense(token, first, 1).status_code == 201
    stale = _dispense(token, first, 1, **{"If-Match": 'W/"0"'})
    assert stale.status_code == 412 and outcome_code(stale) == "stale-version"
    too_much = _dispense(token, first, 999)
    assert too_much.status_code == 409 and outcome_code(too_much) == "over-delivery"
    assert Dispensation.objects.count() == 1


@pytest.mark.django_db
def test_without_grant_404_and_doctor_403(software: Any, rx: Prescription, token: dict[str, Any]) -> None:
    first, _ = _requests(token, rx)
    stranger = make_professional("pharmacist")
    other = user_token(software, stranger)
    response = _dispense(other, first, 1)
    assert response.status_code == 404 and outcome_code(response) == "not-found"
    doctor = make_professional("doctor")
    make_grant(doctor, rx.document.patient)
    refused = _dispense(user_token(software, doctor), first, 1)
    assert refused.status_code == 403 and outcome_code(refused) == "not-pharmacist"
    assert not Dispensation.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {"resourceType": "MedicationRequest"},
        {"resourceType": "MedicationDispense", "status": "completed", "quantity": {"value": 1}},
        {
            "resourceType": "MedicationDispense",
            "status": "completed",
            "authorizingPrescription": [{"reference": "x"}],
            "quantity": {"value": 1},
        },
        {"resourceType": "MedicationDispense", "status": "in-progress"},
    ],
)
def test_invalid_bodies_are_400(token: dict[str, Any], rx: Prescription, body: dict[str, Any]) -> None:
    before = len(events())
    response = api(token["access_token"]).post(
        "/fhir/R4/MedicationDispense", body, content_type="application/fhir+json"
    )
    assert response.status_code == 400
    outcome_code(response)
    assert len(events()) == before


def _with(token: dict[str, Any], request: dict[str, Any], **elements: Any) -> Any:
    """A dispensation of one unit of ``request`` with more ``elements``."""
    body = {
        "resourceType": "MedicationDispense",
        "status": "completed",
        "authorizingPrescription": [{"reference": f"MedicationRequest/{request['id']}"}],
        "quantity": {"value": 1},
        **elements,
    }
    return api(token["access_token"]).post(
        "/fhir/R4/MedicationDispense", body, content_type="application/fhir+json"
    )


def _performer(matricule: str, system: str = PROFESSIONAL_SYSTEM) -> list[dict[str, Any]]:
    return [{"actor": {"identifier": {"system": system, "value": matricule}, "display": "Pharmacien"}}]


@pytest.mark.django_db
def test_performer_is_the_tokens_pharmacist_or_absent(
    token: dict[str, Any], rx: Prescription, pharmacist: Any
) -> None:
    first, _ = _requests(token, rx)
    accepted = _with(token, first, performer=_performer(pharmacist.matricule))
    assert accepted.status_code == 201, accepted.content
    assert Dispensation.objects.get().pharmacist == pharmacist
    before = len(events())
    other = make_professional("pharmacist")
    refused = _with(token, first, performer=_performer(other.matricule))
    assert refused.status_code == 422 and outcome_code(refused) == "performer-mismatch"
    assert refused.json()["issue"][0]["code"] == "business-rule"
    assert "pharmacien pour lequel agit le jeton" in refused.json()["issue"][0]["diagnostics"]
    assert Dispensation.objects.count() == 1
    [event] = events()[before:]
    assert (event.action, event.outcome, event.details["reason"]) == (
        "prescription.dispense",
        "refused",
        "performer_mismatch",
    )
    assert event.patient == rx.document.patient and event.object_id == str(rx.document.public_id)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("performer", "code"),
    [
        (_performer("19800101001", system="urn:oid:1.2.3"), "unknown-identifier-system"),
        ([{"actor": {"display": "Claudine Kremer"}}], "invalid-performer"),
        ([{"actor": {"reference": "Practitioner/1"}}], "invalid-performer"),
        (_performer("1") + _performer("2"), "invalid-performer"),
        ({"actor": {}}, "invalid-performer"),
    ],
)
def test_a_performer_that_cannot_be_checked_is_400(
    token: dict[str, Any], rx: Prescription, performer: Any, code: str
) -> None:
    first, _ = _requests(token, rx)
    before = len(events())
    response = _with(token, first, performer=performer)
    assert response.status_code == 400 and outcome_code(response) == code
    assert not Dispensation.objects.exists() and len(events()) == before


@pytest.mark.django_db
def test_when_handed_over_is_recorded_within_its_bounds(token: dict[str, Any], rx: Prescription) -> None:
    first, _ = _requests(token, rx)
    handed = (timezone.now() - datetime.timedelta(minutes=30)).replace(microsecond=0)
    response = _with(token, first, whenHandedOver=handed.isoformat())
    assert response.status_code == 201, response.content
    [event] = [e for e in events("prescription.dispense") if e.outcome == "success"]
    assert datetime.datetime.fromisoformat(event.details["handed_over_at"]) == handed
    dispensation = Dispensation.objects.get()
    assert dispensation.dispensed_at > handed  # the dispensation is dated when recorded


@pytest.mark.django_db
def test_when_handed_over_out_of_bounds_is_422_and_traced(token: dict[str, Any], rx: Prescription) -> None:
    first, _ = _requests(token, rx)
    future = timezone.now() + datetime.timedelta(hours=1)
    early = rx.prescribed_at - datetime.timedelta(minutes=1)
    for moment, code in ((future, "handed-over-in-future"), (early, "handed-over-before-prescription")):
        before = len(events())
        response = _with(token, first, whenHandedOver=moment.isoformat())
        assert response.status_code == 422 and outcome_code(response) == code
        [event] = events()[before:]
        assert (event.action, event.outcome, event.details["reason"]) == (
            "prescription.dispense",
            "refused",
            code.replace("-", "_"),
        )
    assert not Dispensation.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("elements", "code"),
    [
        ({"whenHandedOver": "2026-01-01"}, "invalid-date"),
        ({"whenHandedOver": "2026-01-01T10:00:00"}, "invalid-date"),
        ({"whenHandedOver": 20260101}, "invalid-date"),
        (
            {"medicationCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "1"}]}},
            "unknown-code-system",
        ),
        ({"medicationCodeableConcept": {"coding": [{"code": "1"}]}}, "unknown-code-system"),
        ({"medicationCodeableConcept": {"coding": [{"system": MEDICINE_SYSTEM}]}}, "invalid-medication"),
        ({"medicationCodeableConcept": {"coding": "x"}}, "invalid-medication"),
    ],
)
def test_dates_and_codes_that_cannot_be_checked_are_400(
    token: dict[str, Any], rx: Prescription, elements: dict[str, Any], code: str
) -> None:
    first, _ = _requests(token, rx)
    before = len(events())
    response = _with(token, first, **elements)
    assert response.status_code == 400 and outcome_code(response) == code
    assert response.json()["issue"][0]["diagnostics"]
    assert not Dispensation.objects.exists() and len(events()) == before


@pytest.mark.django_db
def test_a_medicine_named_in_words_only_is_accepted(token: dict[str, Any], rx: Prescription) -> None:
    first, _ = _requests(token, rx)
    response = _with(token, first, medicationCodeableConcept={"text": "Amoxicilline 500 mg"})
    assert response.status_code == 201, response.content


ATTEMPTS = 6


def test_simultaneous_api_dispensations_record_exactly_one(committed_db: None) -> None:
    """Several pharmacies' software dispense the same line at once (PostgreSQL: real row locks):
    one 201, every other answer a 412 (their If-Match went stale) or 409, one dispensation."""
    import secrets
    import threading
    import time

    from django.db import connection, connections
    from django.test import Client

    from esante.fhir.models import Token, token_digest
    from esante.fhir.services import software_client_register
    from tests.dispensing.conftest import pharmacist_with_access

    from .conftest import USER_SCOPES

    if connection.vendor != "postgresql":
        pytest.skip("row locks under real concurrency: PostgreSQL only")
    software, _ = software_client_register(
        name="Concurrence", organisation="Tests", kind="interactive", scopes=USER_SCOPES,
        redirect_uris=["https://x.example/cb"], public=True,
    )  # fmt: skip
    patient = make_patient()
    prescription = submit_prescription(patient)
    line = prescription.lines.order_by("position").first()
    assert line is not None
    bearers = []
    for _ in range(ATTEMPTS):
        value = secrets.token_urlsafe(32)
        Token.objects.create(
            client=software, user=pharmacist_with_access(patient).user, access_digest=token_digest(value),
            scope=" ".join(USER_SCOPES), issued_at=int(time.time()), expires_in=300,
        )  # fmt: skip
        bearers.append(value)
    body = {
        "resourceType": "MedicationDispense",
        "status": "completed",
        "authorizingPrescription": [
            {"reference": f"MedicationRequest/{prescription.document.public_id}-{line.position}"}
        ],
        "quantity": {"value": 1},
    }
    barrier = threading.Barrier(ATTEMPTS)
    statuses: list[int] = []
    lock = threading.Lock()

    def attempt(bearer: str) -> None:
        try:
            client = Client(headers={"Authorization": f"Bearer {bearer}", "If-Match": 'W/"0"'})
            barrier.wait(timeout=30)
            status = client.post(
                "/fhir/R4/MedicationDispense", body, content_type="application/fhir+json"
            ).status_code
        except Exception:  # reported by the assertions below
            status = -1
        finally:
            connections.close_all()
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=attempt, args=(b,)) for b in bearers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert sorted(statuses).count(201) == 1, statuses
    assert set(statuses) - {201} <= {409, 412}, statuses
    assert Dispensation.objects.count() == 1


# --- withdrawal: update to entered-in-error --------------------------------------------------------


def _withdraw(
    token: dict[str, Any], dispense_id: str, reason: str = "Erreur de saisie", **changes: Any
) -> Any:
    body: dict[str, Any] = {
        "resourceType": "MedicationDispense",
        "id": dispense_id,
        "status": "entered-in-error",
        "statusReasonCodeableConcept": {"text": reason},
    }
    body.update(changes)
    return api(token["access_token"]).put(
        f"/fhir/R4/MedicationDispense/{dispense_id}", body, content_type="application/fhir+json"
    )


@pytest.mark.django_db
def test_withdrawal_by_update_to_entered_in_error(
    token: dict[str, Any], rx: Prescription, software: Any
) -> None:
    first, _ = _requests(token, rx)
    owed = first["extension"][0]["valueQuantity"]["value"]
    created = _dispense(token, first, 1).json()
    response = _withdraw(token, created["id"], reason="Erreur   de saisie")
    assert response.status_code == 200, response.content
    resource = validate(response.json())
    assert resource.status == "entered-in-error"
    assert resource.statusReasonCodeableConcept.text == "Erreur de saisie"
    dispensation = Dispensation.objects.get()
    assert dispensation.is_withdrawn and dispensation.withdrawal_reason == "Erreur de saisie"
    after = {r["id"]: r for r in _requests(token, rx)}
    assert after[first["id"]]["extension"][0]["valueQuantity"]["value"] == owed
    [event] = events("dispensation.withdraw")
    assert event.outcome == "success" and event.details["via"]["client"] == software.client_id
    again = _withdraw(token, created["id"])
    assert again.status_code == 409 and outcome_code(again) == "already-withdrawn"
    assert [e.outcome for e in events("dispensation.withdraw")] == ["success", "refused"]


@pytest.mark.django_db
def test_withdrawal_refusals(software: Any, token: dict[str, Any], rx: Prescription) -> None:
    first, _ = _requests(token, rx)
    created = _dispense(token, first, 1).json()
    before = len(events())
    # Anything but a withdrawal is refused: a dispensation is never edited.
    for body_changes, code in (
        ({"status": "completed"}, "invalid-status"),
        ({"statusReasonCodeableConcept": {"text": "  "}}, "reason-missing"),
        ({"id": "autre"}, "id-mismatch"),
        ({"resourceType": "MedicationRequest"}, "invalid-resource"),
    ):
        response = _withdraw(token, created["id"], **body_changes)
        assert response.status_code == 400 and outcome_code(response) == code
    assert len(events()) == before
    # Another pharmacist with access: 403, and nothing withdrawn.
    colleague = make_professional("pharmacist")
    make_grant(colleague, rx.document.patient)
    refused = _withdraw(user_token(software, colleague), created["id"])
    assert refused.status_code == 403 and outcome_code(refused) == "not-author"
    # A stranger, an unknown id, a bad id: the same 404.
    stranger = user_token(software, make_professional("pharmacist"))
    missing = [_withdraw(stranger, created["id"]), _withdraw(token, str(uuid.uuid4())), _withdraw(token, "x")]
    assert {r.status_code for r in missing} == {404}
    assert len({r.content for r in missing}) == 1
    # Past the withdrawal window (24 hours after the delivery): 422.
    Dispensation.objects.update(dispensed_at=timezone.now() - datetime.timedelta(hours=25))
    late = _withdraw(token, created["id"])
    assert late.status_code == 422 and outcome_code(late) == "window-closed"
    assert not Dispensation.objects.get().is_withdrawn
    assert [e.outcome for e in events("dispensation.withdraw")] == ["refused"] * 5


@pytest.mark.django_db
def test_withdrawal_needs_the_update_scope(
    software: Any, pharmacist: Any, token: dict[str, Any], rx: Prescription
) -> None:
    first, _ = _requests(token, rx)
    created = _dispense(token, first, 1).json()
    narrow = user_token(software, pharmacist, scope="user/MedicationRequest.rs user/MedicationDispense.c")
    response = _withdraw(narrow, created["id"])
    assert response.status_code == 403 and outcome_code(response) == "insufficient-scope"
    assert not Dispensation.objects.get().is_withdrawn
    assert not events("dispensation.withdraw")
