"""Bad input never answers 500: random parameters and bodies against every route of the API.

Every answer is below 500, and every error is an OperationOutcome in application/fhir+json."""

import json
import uuid
from typing import Any

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.access.factories import make_grant, make_patient

from .conftest import api

PARAMETERS = [
    "identifier", "family", "given", "birthdate", "gender", "_id", "_count", "_page", "patient", "status",
    "date", "type", "category", "authoredon", "family:exact", "_format", "author.family",
]  # fmt: skip
VALUES = st.one_of(
    st.text(max_size=40),
    st.just("\x00"),
    st.sampled_from(
        ["urn:oid:1.3.182.4.4|", "ge2026-01-01", "lt", "0", "-1", "99999999999", "female", "Patient/x"]
    ),
)
QUERY = st.dictionaries(st.one_of(st.sampled_from(PARAMETERS), st.text(max_size=10)), VALUES, max_size=5)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
RESOURCE = st.fixed_dictionaries(
    {"resourceType": st.sampled_from(["Parameters", "MedicationDispense", "Bundle", "Patient", ""])},
    optional={"parameter": JSON, "entry": JSON, "type": st.sampled_from(["transaction", "batch"]) | JSON,
              "status": JSON, "authorizingPrescription": JSON, "quantity": JSON},
)  # fmt: skip
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _check(response: Any) -> None:
    assert response.status_code < 500, response.content[:300]
    if response.status_code >= 400:
        assert response["Content-Type"].startswith("application/fhir+json")
        assert json.loads(response.content)["resourceType"] == "OperationOutcome"


@pytest.fixture
def world(token: dict[str, Any], pharmacist: Any) -> dict[str, Any]:
    patient = make_patient()
    make_grant(pharmacist, patient)
    return {"client": api(token["access_token"]), "patient": str(patient.public_id)}


@pytest.mark.django_db
@override_settings(ESANTE_SEARCH_RATE_LIMIT=100_000)
@FUZZ
@given(
    query=QUERY,
    path=st.sampled_from(["/fhir/R4/Patient", "/fhir/R4/DocumentReference", "/fhir/R4/MedicationRequest"]),
    own=st.booleans(),
)
def test_search_parameters(world: dict[str, Any], query: dict[str, str], path: str, own: bool) -> None:
    if own:  # the patient the pharmacist holds an access to: the filters run, not only the gate
        query = {**query, "patient": world["patient"]}
    _check(world["client"].get(path, query))


@pytest.mark.django_db
@FUZZ
@given(
    body=st.one_of(RESOURCE, JSON), route=st.sampled_from(["declare", "dispense", "transaction", "search"])
)
def test_bodies(world: dict[str, Any], body: Any, route: str) -> None:
    path = {
        "declare": f"/fhir/R4/Patient/{world['patient']}/$declare-access",
        "dispense": "/fhir/R4/MedicationDispense",
        "transaction": "/fhir/R4/",
        "search": "/fhir/R4/Patient/_search",
    }[route]
    _check(world["client"].post(path, json.dumps(body), content_type="application/fhir+json"))


@pytest.mark.django_db
@FUZZ
@given(
    segment=st.text(min_size=1, max_size=60).filter(lambda s: "/" not in s and "?" not in s and "#" not in s)
)
def test_path_segments(world: dict[str, Any], segment: str) -> None:
    from urllib.parse import quote

    for template in (
        "/fhir/R4/Patient/{}",
        "/fhir/R4/DocumentReference/{}",
        "/fhir/R4/DocumentReference/{}/content",
    ):
        _check(world["client"].get(template.format(quote(segment, safe=""))))
    _check(world["client"].get(f"/fhir/R4/Patient/{uuid.uuid4()}"))


@pytest.mark.django_db
def test_a_nul_character_is_bad_input_everywhere(world: dict[str, Any]) -> None:
    """PostgreSQL stores no NUL: found by the fuzzer above (a 500 there), now a 400 before any view."""
    from .conftest import events, outcome_code

    before = len(events())
    client = world["client"]
    answers = [
        client.get("/fhir/R4/Patient/%00"),
        client.get("/fhir/R4/Patient", {"family": "Du\x00pont", "given": "A"}),
        client.post(
            "/fhir/R4/Patient/_search",
            "family=a%00b&given=c",
            content_type="application/x-www-form-urlencoded",
        ),
        client.post(
            f"/fhir/R4/Patient/{world['patient']}/$declare-access",
            '{"resourceType": "Parameters", "parameter": [{"name": "motif", "valueString": "a\\u0000"}]}',
            content_type="application/fhir+json",
        ),
    ]
    assert [a.status_code for a in answers] == [400] * 4
    assert {outcome_code(a) for a in answers} == {"invalid-characters"}
    assert len(events()) == before
