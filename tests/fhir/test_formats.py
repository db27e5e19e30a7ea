"""JSON always, XML where PDQm and MHD require it (``_format``, ``Accept``), 406 otherwise —
refused before the view: nothing read, nothing written, nothing traced."""

import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from defusedxml import ElementTree
from django.core.files.storage import default_storage
from django.test import Client

from esante.audit.models import AuditEvent
from esante.documents.models import Document
from tests.access.factories import make_grant, make_patient
from tests.dispensing.conftest import submit_prescription

from . import outside
from .conftest import api, events

XML = "application/fhir+xml"
NS = "{http://hl7.org/fhir}"


def _xml(response: Any) -> Any:
    assert response.status_code < 500, response.content
    assert response["Content-Type"].startswith(XML), response["Content-Type"]
    return ElementTree.fromstring(response.content)


def _value(root: Any, name: str) -> str:
    found = root.find(f"{NS}{name}")
    assert found is not None, name
    return str(found.get("value"))


@pytest.fixture
def record(db: Any, pharmacist: Any) -> Any:
    patient = make_patient()
    submit_prescription(patient)
    make_grant(pharmacist, patient)
    return patient


@pytest.mark.django_db
def test_pdqm_in_xml_by_accept_and_by_format(record: Any, token: dict[str, Any], tmp_path: Path) -> None:
    client = api(token["access_token"])
    query = urllib.parse.urlencode({"identifier": f"urn:oid:1.3.182.4.4|{record.matricule}"})
    found = client.post(
        "/fhir/R4/Patient/_search",
        query,
        content_type="application/x-www-form-urlencoded",
        headers={"Accept": XML},
    )
    bundle = _xml(found)
    assert bundle.tag == f"{NS}Bundle"
    assert _value(bundle, "total") == "1"
    patient = bundle.find(f"{NS}entry/{NS}resource/{NS}Patient")
    assert patient is not None and patient.find(f"{NS}id").get("value") == str(record.public_id)
    # The search is traced exactly as in JSON.
    assert [(e.action, e.outcome) for e in events("patient.search")] == [("patient.search", "success")]
    read = _xml(
        client.get(f"/fhir/R4/Patient/{record.public_id}", {"_format": "xml"}, headers={"Accept": "*/*"})
    )
    assert read.tag == f"{NS}Patient"
    outside.write_xml(tmp_path, found.content, "Bundle-Patient")
    outside.write_xml(
        tmp_path, client.get(f"/fhir/R4/Patient/{record.public_id}", {"_format": XML}).content, "Patient"
    )
    _outside_clean(tmp_path)


@pytest.mark.django_db
def test_mhd_in_xml(record: Any, token: dict[str, Any], tmp_path: Path) -> None:
    client = api(token["access_token"])
    search = client.get("/fhir/R4/DocumentReference", {"patient": str(record.public_id), "_format": "xml"})
    bundle = _xml(search)
    reference = bundle.find(f"{NS}entry/{NS}resource/{NS}DocumentReference")
    assert reference is not None
    url = reference.find(f"{NS}content/{NS}attachment/{NS}url").get("value")
    assert url.startswith("http://testserver/fhir/R4/DocumentReference/")
    document_id = reference.find(f"{NS}id").get("value")
    read = client.get(
        f"/fhir/R4/DocumentReference/{document_id}", headers={"Accept": f"{XML}, application/xml"}
    )
    assert _xml(read).tag == f"{NS}DocumentReference"
    # The document's bytes keep their own type: XML asked of the API is no reason to refuse them.
    content = client.get(url.removeprefix("http://testserver"), {"_format": "xml"}, headers={"Accept": "*/*"})
    assert content.status_code == 200 and content["Content-Type"] == "application/hl7-cda+xml"
    outside.write_xml(tmp_path, search.content, "Bundle-DocumentReference")
    outside.write_xml(tmp_path, read.content, "DocumentReference")
    metadata = Client().get("/fhir/R4/metadata", headers={"Accept": XML})
    capability = _xml(metadata)
    assert capability.tag == f"{NS}CapabilityStatement"
    formats = {element.get("value") for element in capability.findall(f"{NS}format")}
    assert formats == {"application/fhir+json", XML}
    outside.write_xml(tmp_path, metadata.content, "CapabilityStatement")
    _outside_clean(tmp_path)


@pytest.mark.django_db
def test_refusals_are_in_xml_too(record: Any, token: dict[str, Any]) -> None:
    missing = _xml(Client().get("/fhir/R4/Patient", {"_format": "xml"}))
    assert missing.tag == f"{NS}OperationOutcome"
    assert "Jeton" in missing.find(f"{NS}issue/{NS}diagnostics").get("value")
    unknown = api(token["access_token"]).get("/fhir/R4/Patient/inconnu", headers={"Accept": XML})
    assert unknown.status_code == 404 and _xml(unknown).tag == f"{NS}OperationOutcome"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "params", "accept"),
    [
        ("/fhir/R4/MedicationRequest", {"_format": "xml"}, "*/*"),  # no profile asks XML of it
        ("/fhir/R4/AuditEvent", {}, XML),
        ("/fhir/R4/Patient", {"_format": "html"}, "*/*"),
        ("/fhir/R4/Patient", {}, "text/html"),
        ("/fhir/R4/DocumentReference", {}, "application/fhir+json;q=0, application/fhir+xml;q=0"),
    ],
)
def test_an_encoding_not_served_is_406_before_anything(
    record: Any, token: dict[str, Any], path: str, params: dict[str, str], accept: str
) -> None:
    before = AuditEvent.objects.count()
    response = api(token["access_token"]).get(
        path, {"patient": str(record.public_id), **params}, headers={"Accept": accept}
    )
    assert response.status_code == 406
    assert response["Content-Type"].startswith("application/fhir+json")
    body = response.json()
    assert body["issue"][0]["details"]["coding"][0]["code"] == "not-acceptable"
    assert "application/fhir+xml" in body["issue"][0]["diagnostics"]
    assert record.matricule not in response.content.decode()
    assert AuditEvent.objects.count() == before


@pytest.mark.django_db
def test_json_wins_a_tie_and_a_higher_q_wins(record: Any, token: dict[str, Any]) -> None:
    client = api(token["access_token"])
    url = f"/fhir/R4/Patient/{record.public_id}"
    assert client.get(url, headers={"Accept": f"{XML}, application/fhir+json"})["Content-Type"].startswith(
        "application/fhir+json"
    )
    assert client.get(url, headers={"Accept": f"application/fhir+json;q=0.5, {XML}"})[
        "Content-Type"
    ].startswith(XML)
    assert client.get(url, {"_format": "json"}, headers={"Accept": XML})["Content-Type"].startswith(
        "application/fhir+json"
    )


def _outside_clean(directory: Path) -> None:
    """FHIR.js reads our XML with its own parser, and both validators find nothing wrong."""
    reason = outside.missing()
    if reason is not None:
        outside.unavailable(reason)
    assert outside.errors(directory) == []


def _bundle_xml(patient: Any) -> bytes:
    from fhir.resources.R4B.bundle import Bundle

    from .test_submission import _bundle

    return bytes(Bundle.model_validate(_bundle(patient, b"Historique en XML.")).model_dump_xml())


@pytest.mark.django_db
def test_iti65_in_xml(eservices_token: str, tmp_path: Path) -> None:
    patient = make_patient()
    response = api(eservices_token).post(
        "/fhir/R4/", _bundle_xml(patient), content_type="application/fhir+xml", headers={"Accept": XML}
    )
    answer = _xml(response)
    assert response.status_code == 200
    assert answer.tag == f"{NS}Bundle" and _value(answer, "type") == "transaction-response"
    statuses = [e.get("value") for e in answer.findall(f"{NS}entry/{NS}response/{NS}status")]
    assert statuses == ["201 Created"] * 3
    document = Document.objects.get()
    assert (document.patient, document.title) == (patient, "Historique de médication")
    with default_storage.open(document.content.name, "rb") as fh:
        assert fh.read() == b"Historique en XML."
    assert [e.outcome for e in events("document.submit")] == ["success"]
    outside.write_xml(tmp_path, response.content, "Bundle-transaction-response")
    _outside_clean(tmp_path)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        # An external entity (XXE): never resolved, the body is refused whole.
        b'<?xml version="1.0"?><!DOCTYPE Bundle [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<Bundle xmlns="http://hl7.org/fhir"><type value="&x;"/></Bundle>',
        # Entity expansion ("billion laughs"), in miniature.
        b'<?xml version="1.0"?><!DOCTYPE Bundle [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
        b'<Bundle xmlns="http://hl7.org/fhir"><type value="&b;"/></Bundle>',
        b"<Bundle><type value='transaction'/></Bundle>",  # not in the FHIR namespace
        b'<Bundle xmlns="http://hl7.org/fhir"><type value="transaction"/><nope/></Bundle>',
        b"<pas du xml",
    ],
)
def test_unreadable_or_dangerous_xml_is_400_and_files_nothing(eservices_token: str, body: bytes) -> None:
    before = AuditEvent.objects.count()
    response = api(eservices_token).post("/fhir/R4/", body, content_type="application/fhir+xml")
    assert response.status_code == 400
    assert response.json()["issue"][0]["details"]["coding"][0]["code"] == "invalid-xml"
    assert b"root:" not in response.content
    assert not Document.objects.exists()
    assert AuditEvent.objects.count() == before


@pytest.mark.django_db
def test_xml_bodies_are_for_iti65_only(token: dict[str, Any], record: Any) -> None:
    body = b'<Parameters xmlns="http://hl7.org/fhir"/>'
    response = api(token["access_token"]).post(
        f"/fhir/R4/Patient/{record.public_id}/$declare-access", body, content_type="application/fhir+xml"
    )
    assert response.status_code == 415
    assert response.json()["issue"][0]["details"]["coding"][0]["code"] == "unsupported-media-type"
