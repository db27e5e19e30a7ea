"""DocumentReference (MHD ITI-67 find, ITI-68 retrieve) through the access gate: what the
portal shows, no more (confidentiality, hidden documents), each reading traced with the software."""

import datetime
import urllib.parse
import uuid
from typing import Any

import pytest

from esante.documents.models import Document
from esante.documents.services import document_submit
from tests.access.factories import make_grant, make_patient, make_professional
from tests.dispensing.conftest import submit_prescription

from .conftest import api, events, outcome_code, validate

AT = datetime.datetime(2026, 11, 25, 9, 30, tzinfo=datetime.UTC)


def submit(patient: Any, **overrides: Any) -> Document:
    values: dict[str, Any] = {
        "content": b"Texte du document.",
        "patient_matricule": patient.matricule,
        "type_code": "10160-0",
        "title": "Historique de médication",
        "clinical_at": AT,
        "author_name": "Dr Autre",
        "source_system": "CHL",
    }
    values.update(overrides)
    return document_submit(**values)


@pytest.fixture
def record(db: Any, pharmacist: Any) -> dict[str, Any]:
    patient = make_patient()
    prescription = submit_prescription(patient)
    note = submit(patient, clinical_at=AT - datetime.timedelta(days=30))
    very = submit(patient, type_code="11502-2", title="Labo très restreint", confidentiality="V")
    hidden = submit(patient, type_code="11369-6", title="Vaccin masqué", hidden_by_patient=True)
    make_grant(pharmacist, patient)
    return {
        "patient": patient,
        "prescription": prescription.document,
        "note": note,
        "very": very,
        "hidden": hidden,
    }


def _search(token: dict[str, Any], **params: str) -> Any:
    return api(token["access_token"]).get("/fhir/R4/DocumentReference", params)


@pytest.mark.django_db
def test_search_shows_what_the_portal_shows(
    token: dict[str, Any], record: dict[str, Any], software: Any
) -> None:
    patient = record["patient"]
    response = _search(token, patient=str(patient.public_id))
    assert response.status_code == 200
    body = response.json()
    validate(body)
    ids = {entry["resource"]["id"] for entry in body["entry"]}
    visible = {str(record["prescription"].public_id), str(record["note"].public_id)}
    assert ids == visible and body["total"] == 2
    assert str(record["very"].public_id) not in response.content.decode()
    assert str(record["hidden"].public_id) not in response.content.decode()
    prescription = next(
        e["resource"] for e in body["entry"] if e["resource"]["id"] == str(record["prescription"].public_id)
    )
    assert prescription["type"]["coding"][0]["code"] == "57833-6"
    assert prescription["subject"]["reference"] == f"Patient/{patient.public_id}"
    url = prescription["content"][0]["attachment"]["url"]
    assert url == f"http://testserver/fhir/R4/DocumentReference/{prescription['id']}/content"
    [event] = events("document.search")
    assert (event.outcome, event.patient_id, event.details["results"]) == ("success", patient.pk, 2)
    assert event.details["via"]["client"] == software.client_id


@pytest.mark.django_db
def test_search_filters_and_paging(token: dict[str, Any], record: dict[str, Any]) -> None:
    patient = str(record["patient"].public_id)
    by_type = _search(token, patient=f"Patient/{patient}", type="http://loinc.org|57833-6").json()
    assert [e["resource"]["id"] for e in by_type["entry"]] == [str(record["prescription"].public_id)]
    by_category = _search(token, patient=patient, category="prescription").json()
    assert by_category["total"] == 1
    older = _search(token, patient=patient, date="lt2026-11-01").json()
    assert [e["resource"]["id"] for e in older["entry"]] == [str(record["note"].public_id)]
    assert _search(token, patient=patient, status="superseded").json()["total"] == 0
    first = _search(token, patient=patient, _count="1").json()
    assert len(first["entry"]) == 1 and first["total"] == 2
    assert any(link["relation"] == "next" for link in first["link"])


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "patient-required"),
        ({"patient": "x", "status": "draft"}, "invalid-status"),
        ({"patient": "x", "date": "demain"}, "invalid-date"),
        ({"patient": "x", "type": "urn:other|1"}, "unknown-code-system"),
        ({"patient": "x", "author.given": "Weber"}, "unknown-parameter"),
        ({"patient": "x", "author.family": " "}, "invalid-author"),
        ({"patient": "x", "patient.identifier": "urn:oid:1.3.182.4.4|1904112012345"}, "patient-required"),
        ({"patient.identifier": "urn:other|1904112012345"}, "unknown-identifier-system"),
        ({"patient.identifier": "urn:oid:1.3.182.4.4|"}, "identifier-value-missing"),
    ],
)
def test_bad_parameters_are_400(
    token: dict[str, Any], record: dict[str, Any], params: dict[str, str], code: str
) -> None:
    if params.get("patient") == "x":
        params["patient"] = str(record["patient"].public_id)
    before = len(events())
    response = _search(token, **params)
    assert response.status_code == 400
    assert outcome_code(response) == code
    assert len(events()) == before


@pytest.mark.django_db
def test_without_grant_search_read_and_content_are_404_like_missing(token: dict[str, Any], db: Any) -> None:
    stranger = make_patient(birth_name="Autre")
    document = submit(stranger)
    client = api(token["access_token"])
    responses = [
        client.get("/fhir/R4/DocumentReference", {"patient": str(stranger.public_id)}),
        client.get("/fhir/R4/DocumentReference", {"patient": str(uuid.uuid4())}),
        client.get(f"/fhir/R4/DocumentReference/{document.public_id}"),
        client.get(f"/fhir/R4/DocumentReference/{uuid.uuid4()}"),
        client.get(f"/fhir/R4/DocumentReference/{document.public_id}/content"),
        client.get("/fhir/R4/DocumentReference/not-an-id/content"),
    ]
    assert {r.status_code for r in responses} == {404}
    assert len({r.content for r in responses}) == 1
    assert all(b"Texte du document" not in r.content for r in responses)
    refused = [(e.action, e.outcome) for e in events("document.search", "document.read", "document.content")]
    assert refused == [
        ("document.search", "refused"),
        ("document.search", "refused"),
        ("document.read", "refused"),
        ("document.read", "refused"),
        ("document.content", "refused"),
        ("document.content", "refused"),
    ]


@pytest.mark.django_db
def test_hidden_document_read_is_404(token: dict[str, Any], record: dict[str, Any]) -> None:
    for document in (record["hidden"], record["very"]):
        response = api(token["access_token"]).get(f"/fhir/R4/DocumentReference/{document.public_id}/content")
        assert response.status_code == 404


@pytest.mark.django_db
def test_read_and_retrieve_the_bytes(token: dict[str, Any], record: dict[str, Any]) -> None:
    note = record["note"]
    client = api(token["access_token"])
    read = client.get(f"/fhir/R4/DocumentReference/{note.public_id}")
    assert read.status_code == 200
    resource = validate(read.json())
    assert resource.status == "current"
    url = resource.content[0].attachment.url.removeprefix("http://testserver")
    refused = client.get(url, headers={"Accept": "application/pdf"})
    assert refused.status_code == 406 and outcome_code(refused) == "not-acceptable"
    content = client.get(url, headers={"Accept": "text/plain, */*;q=0.1"})
    assert content.status_code == 200
    assert content["Content-Type"] == "text/plain"
    assert content.getvalue() == b"Texte du document."
    assert "sandbox" in content["Content-Security-Policy"]
    assert content["X-Content-Type-Options"] == "nosniff"
    assert [(e.action, e.outcome) for e in events("document.read", "document.content")] == [
        ("document.read", "success"),
        ("document.content", "success"),
    ]


@pytest.mark.django_db
def test_scope_needed_for_documents(software: Any, pharmacist: Any, record: dict[str, Any]) -> None:
    from .conftest import user_token

    narrow = user_token(software, pharmacist, scope="user/Patient.rs")
    response = api(narrow["access_token"]).get(
        "/fhir/R4/DocumentReference", {"patient": str(record["patient"].public_id)}
    )
    assert response.status_code == 403
    assert not events("document.search")


MATRICULE = "urn:oid:1.3.182.4.4"


@pytest.mark.django_db
def test_search_by_patient_identifier_by_get_and_by_post(
    token: dict[str, Any], record: dict[str, Any]
) -> None:
    patient = record["patient"]
    by_id = _search(token, patient=str(patient.public_id)).json()
    by_get = _search(token, **{"patient.identifier": f"{MATRICULE}|{patient.matricule}"})
    by_post = api(token["access_token"]).post(
        "/fhir/R4/DocumentReference/_search",
        urllib.parse.urlencode({"patient.identifier": f"{MATRICULE}|{patient.matricule}"}),
        content_type="application/x-www-form-urlencoded",
    )
    for response in (by_get, by_post):
        assert response.status_code == 200
        body = validate(response.json())
        assert body.total == 2
        assert {e.resource.id for e in body.entry} == {e["resource"]["id"] for e in by_id["entry"]}
    searches = events("document.search")
    assert [(e.outcome, e.patient_id) for e in searches] == [("success", patient.pk)] * 3


@pytest.mark.django_db
def test_patient_identifier_of_a_stranger_or_nobody_is_404_like_missing(
    token: dict[str, Any], record: dict[str, Any]
) -> None:
    stranger = make_patient(birth_name="Autre", birth_date=datetime.date(1950, 1, 2))
    submit(stranger)
    before = len(events())
    responses = [
        _search(token, **{"patient.identifier": f"{MATRICULE}|{stranger.matricule}"}),
        _search(token, **{"patient.identifier": f"{MATRICULE}|1950010299999"}),
        _search(token, **{"patient.identifier": f"{MATRICULE}|pas-un-matricule"}),
    ]
    assert {r.status_code for r in responses} == {404}
    assert len({r.content for r in responses}) == 1
    assert all(b"Texte du document" not in r.content for r in responses)
    written = events()[before:]
    assert [(e.action, e.outcome) for e in written] == [("document.search", "refused")] * 3
    assert [e.patient_id for e in written] == [stranger.pk, None, None]


@pytest.mark.django_db
def test_search_by_author_family(token: dict[str, Any], record: dict[str, Any]) -> None:
    patient = record["patient"]
    doctor = make_professional("doctor", last_name="Weber-Muller", first_name="Anne")
    letter = submit(patient, title="Courrier", author=doctor, author_name="Dr Anne Weber-Muller")
    for family in ("weber", "Weber-Muller", "WEBER-M"):
        body = _search(token, patient=str(patient.public_id), **{"author.family": family}).json()
        assert [e["resource"]["id"] for e in body["entry"]] == [str(letter.public_id)], family
    resource = validate(body["entry"][0]["resource"])
    assert resource.contained[0].name[0].family == "Weber-Muller"
    assert resource.author[0].reference == "#author"
    exact = _search(token, patient=str(patient.public_id), **{"author.family:exact": "Weber"}).json()
    assert exact["total"] == 0
    exact = _search(token, patient=str(patient.public_id), **{"author.family:exact": "Weber-Muller"}).json()
    assert exact["total"] == 1
    assert _search(token, patient=str(patient.public_id), **{"author.family": "Schmit"}).json()["total"] == 0
    assert events("document.search")[0].details["filters"]["author.family"] == "weber"


@pytest.mark.django_db
def test_retrieve_refuses_bytes_that_no_longer_match_their_sha256(
    token: dict[str, Any], record: dict[str, Any]
) -> None:
    from pathlib import Path

    from django.core.files.storage import default_storage

    from esante.audit.models import AuditEvent

    note = record["note"]
    Path(default_storage.path(note.content.name)).write_bytes(b"Texte du document!")
    response = api(token["access_token"]).get(
        f"/fhir/R4/DocumentReference/{note.public_id}/content", headers={"Accept": "text/plain"}
    )
    assert response.status_code == 500 and outcome_code(response) == "content-altered"
    assert b"Texte du document" not in response.content
    assert "empreinte SHA-256" in response.json()["issue"][0]["diagnostics"]
    assert [(e.action, e.outcome) for e in events("document.content", "storage.integrity")] == [
        ("document.content", "success"),
        ("storage.integrity", "failure"),
    ]
    assert AuditEvent.objects.get(action="storage.integrity").details["expected_sha256"] == note.sha256
