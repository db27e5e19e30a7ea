"""AuditEvent: a professional reads the events of their own actions, in BALP shape."""

from typing import Any

import pytest

from tests.access.factories import make_patient, make_professional

from .conftest import api, events, user_token, validate


@pytest.mark.django_db
def test_own_events_only_newest_first_and_the_reading_traced(software: Any, pharmacist: Any) -> None:
    scopes = "user/Patient.rs user/AuditEvent.rs"
    token = user_token(software, pharmacist, scope=scopes)
    other = make_professional("pharmacist")
    user_token(software, other, scope=scopes)
    patient = make_patient()
    client = api(token["access_token"])
    client.post(
        "/fhir/R4/Patient/_search",
        f"identifier={patient.matricule}",
        content_type="application/x-www-form-urlencoded",
    )
    client.get(f"/fhir/R4/Patient/{patient.public_id}")  # refused: no grant
    response = client.get("/fhir/R4/AuditEvent", {"_count": "3"})
    assert response.status_code == 200
    body = response.json()
    validate(body)
    resources = [e["resource"] for e in body["entry"]]
    assert [r["subtype"][0]["code"] for r in resources] == ["patient.read", "patient.search", "api.token"]
    refused = resources[0]
    assert (
        refused["outcome"] == "8"
        and refused["entity"][0]["what"]["reference"] == f"Patient/{patient.public_id}"
    )
    assert refused["agent"][1]["who"]["identifier"]["value"] == software.client_id
    mine = {e.sequence for e in events() if e.actor_id == pharmacist.user.pk}
    assert {int(r["id"]) for r in resources} <= mine
    assert body["total"] == len(mine) - 1  # the reading itself is traced after the count
    assert events("audit.read")[-1].actor_id == pharmacist.user.pk


@pytest.mark.django_db
def test_scope_needed(software: Any, pharmacist: Any) -> None:
    narrow = user_token(software, pharmacist, scope="user/Patient.rs")
    assert api(narrow["access_token"]).get("/fhir/R4/AuditEvent").status_code == 403
