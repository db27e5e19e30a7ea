"""Patient (PDQm ITI-78) and ``$declare-access``: through the access gate, with the portal's
rate limit and audit, the software named in every event, and every refusal an OperationOutcome."""

import urllib.parse
import uuid
from typing import Any

import pytest
from django.test import Client, override_settings

from esante.access.models import AccessGrant
from esante.fhir.models import SoftwareAuthorisation, Token
from esante.fhir.routes.common import found_by_search, remember_found
from tests.access.factories import make_grant, make_patient

from .conftest import api, events, outcome_code, user_token, validate

SEARCH = "/fhir/R4/Patient/_search"
FORM = "application/x-www-form-urlencoded"


def _search(access_token: str, **params: str) -> Any:
    return api(access_token).post(SEARCH, urllib.parse.urlencode(params), content_type=FORM)


def _declare(access_token: str, patient_id: object, **values: Any) -> Any:
    parameters = [
        {"name": "motif", "valueString": values.get("motif", "Délivrance d'une prescription")},
        {"name": "mode", "valueCode": values.get("mode", "care")},
        {"name": "conditionsAccepted", "valueBoolean": values.get("accepted", True)},
    ]
    return api(access_token).post(
        f"/fhir/R4/Patient/{patient_id}/$declare-access",
        {"resourceType": "Parameters", "parameter": parameters},
        content_type="application/fhir+json",
    )


@pytest.fixture
def peppa(db: Any) -> Any:
    return make_patient()


# --- the token ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_no_token_is_401_with_www_authenticate_and_traced(peppa: Any) -> None:
    response = Client().post(SEARCH, f"identifier={peppa.matricule}", content_type=FORM)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith('Bearer realm="esante-fhir"')
    assert outcome_code(response) == "missing-token"
    assert [(e.action, e.outcome) for e in events()] == [("api.request", "refused")]
    assert peppa.matricule not in response.content.decode()


@pytest.mark.django_db
def test_invalid_expired_or_revoked_token_is_401(token: dict[str, Any], peppa: Any, pharmacist: Any) -> None:
    bad = _search("not-a-token", identifier=peppa.matricule)
    assert bad.status_code == 401 and 'error="invalid_token"' in bad["WWW-Authenticate"]
    Token.objects.update(issued_at=0)
    expired = _search(token["access_token"], identifier=peppa.matricule)
    assert expired.status_code == 401 and outcome_code(expired) == "invalid-token"
    assert not events("patient.search")


@pytest.mark.django_db
def test_revoking_on_the_portal_cuts_the_software_off(
    token: dict[str, Any], peppa: Any, pharmacist: Any
) -> None:
    portal = Client()
    portal.force_login(pharmacist.user)
    page = portal.get("/edocuments/logiciels/").content.decode()
    assert "Logiciels autorisés" in page and "PharmaSoft" in page
    assert _search(token["access_token"], identifier=peppa.matricule).status_code == 200
    authorisation = SoftwareAuthorisation.objects.get()
    assert portal.post(f"/edocuments/logiciels/{authorisation.pk}/retirer/").status_code == 302
    assert _search(token["access_token"], identifier=peppa.matricule).status_code == 401
    refresh = Client().post(
        "/fhir/R4/auth/token",
        {
            "grant_type": "refresh_token",
            "refresh_token": token["refresh_token"],
            "client_id": authorisation.client.client_id,
        },
    )
    assert refresh.status_code == 400
    assert events("api.revoke")[0].details["by"] == "professional"
    assert "PharmaSoft" not in portal.get("/edocuments/logiciels/").content.decode()


@pytest.mark.django_db
def test_scope_is_enforced(software: Any, pharmacist: Any, peppa: Any) -> None:
    narrow = user_token(software, pharmacist, scope="user/DocumentReference.rs")
    response = _search(narrow["access_token"], identifier=peppa.matricule)
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response["WWW-Authenticate"]
    assert 'scope="user/Patient.s"' in response["WWW-Authenticate"]
    assert outcome_code(response) == "insufficient-scope"
    assert not events("patient.search")
    assert events("api.request")[-1].details["reason"] == "insufficient_scope"


# --- search --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_search_by_identifier_through_post(token: dict[str, Any], peppa: Any, software: Any) -> None:
    response = _search(token["access_token"], identifier=f"urn:oid:1.3.182.4.4|{peppa.matricule}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/fhir+json")
    body = response.json()
    validate(body)
    assert body["type"] == "searchset" and body["total"] == 1
    resource = body["entry"][0]["resource"]
    assert resource["id"] == str(peppa.public_id)
    assert {"system": "urn:oid:1.3.182.4.4", "value": peppa.matricule, "use": "official"} in resource[
        "identifier"
    ]
    assert resource["gender"] == "female" and resource["birthDate"] == "1904-11-20"
    assert all(peppa.matricule not in link["url"] for link in body["link"])
    [event] = events("patient.search")
    assert event.details["criteria"]["matricule"] == peppa.matricule
    assert event.details["via"] == {
        "channel": "api",
        "client": software.client_id,
        "client_name": "PharmaSoft",
    }


@pytest.mark.django_db
def test_search_by_names_pages_with_next_links(token: dict[str, Any]) -> None:
    for first in ("Anne", "Anna", "Annick"):
        make_patient(birth_name="Dupont", first_names=first)
    make_patient(birth_name="Dupont", first_names="Annabelle", sex="M")
    client = api(token["access_token"])
    response = client.get(
        "/fhir/R4/Patient", {"family": "dupont", "given": "ann", "gender": "female", "_count": "2"}
    )
    body = response.json()
    validate(body)
    assert body["total"] == 3 and len(body["entry"]) == 2
    [next_url] = [link["url"] for link in body["link"] if link["relation"] == "next"]
    assert next_url.startswith("http://testserver/fhir/R4/Patient?")
    following = client.get(next_url.removeprefix("http://testserver")).json()
    assert len(following["entry"]) == 1
    assert not [link for link in following["link"] if link["relation"] == "next"]
    seen = {e["resource"]["id"] for e in body["entry"] + following["entry"]}
    assert len(seen) == 3


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"family": "D"}, "search-criteria"),
        ({"identifier": "urn:oid:9.9|123"}, "unknown-identifier-system"),
        ({"identifier": "1234"}, "search-criteria"),
        ({"family": "Dupont", "birthdate": "hier"}, "invalid-birthdate"),
        ({"family": "Dupont", "given": "A", "gender": "x"}, "invalid-gender"),
        ({"_id": "pas-un-uuid"}, "invalid-id"),
        ({"name": "Dupont"}, "unknown-parameter"),
        ({"family": "Dupont", "given": "A", "_count": "beaucoup"}, "invalid-paging"),
    ],
)
def test_bad_search_parameters_are_400_and_write_nothing(
    token: dict[str, Any], params: dict[str, str], code: str
) -> None:
    before = len(events())
    response = api(token["access_token"]).get("/fhir/R4/Patient", params)
    assert response.status_code == 400
    assert outcome_code(response) == code
    assert len(events()) == before


@pytest.mark.django_db
@override_settings(ESANTE_SEARCH_RATE_LIMIT=1)
def test_search_rate_limit_is_the_portals(token: dict[str, Any], peppa: Any) -> None:
    assert _search(token["access_token"], identifier=peppa.matricule).status_code == 200
    response = _search(token["access_token"], identifier=peppa.matricule)
    assert response.status_code == 429
    assert response["Retry-After"] == "600"
    assert outcome_code(response) == "rate-limited"
    assert "entry" not in response.json()
    assert [e.outcome for e in events("patient.search")] == ["success", "refused"]


# --- read and $declare-access --------------------------------------------------------------------


@pytest.mark.django_db
def test_read_without_grant_is_the_same_404_as_missing(token: dict[str, Any], peppa: Any) -> None:
    client = api(token["access_token"])
    forbidden = client.get(f"/fhir/R4/Patient/{peppa.public_id}")
    missing = client.get(f"/fhir/R4/Patient/{uuid.uuid4()}")
    assert forbidden.status_code == missing.status_code == 404
    assert forbidden.content == missing.content
    assert peppa.matricule not in forbidden.content.decode()
    assert [(e.outcome, e.details["reason"]) for e in events("patient.read")] == [
        ("refused", "no_grant"),
        ("refused", "unknown"),
    ]


@pytest.mark.django_db
def test_read_under_a_grant(token: dict[str, Any], peppa: Any, pharmacist: Any) -> None:
    make_grant(pharmacist, peppa)
    response = api(token["access_token"]).get(f"/fhir/R4/Patient/{peppa.public_id}")
    assert response.status_code == 200
    assert validate(response.json()).id == str(peppa.public_id)
    [event] = events("patient.read")
    assert (event.outcome, event.patient_id) == ("success", peppa.pk)


@pytest.mark.django_db
def test_declare_access_after_a_search_opens_the_record(
    token: dict[str, Any], peppa: Any, pharmacist: Any, software: Any
) -> None:
    assert _search(token["access_token"], identifier=peppa.matricule).status_code == 200
    response = _declare(token["access_token"], peppa.public_id)
    assert response.status_code == 200, response.content
    body = response.json()
    validate(body)
    assert body["parameter"][0] == {"name": "mode", "valueCode": "care"}
    grant = AccessGrant.objects.get()
    assert (grant.professional, grant.patient, grant.mode) == (pharmacist, peppa, "care")
    [event] = events("access.grant")
    assert event.details["via"]["client"] == software.client_id
    assert event.motif == "Délivrance d'une prescription"
    assert api(token["access_token"]).get(f"/fhir/R4/Patient/{peppa.public_id}").status_code == 200


@pytest.mark.django_db
def test_declare_access_without_a_search_is_404(token: dict[str, Any], peppa: Any) -> None:
    response = _declare(token["access_token"], peppa.public_id)
    assert response.status_code == 404
    assert outcome_code(response) == "not-found"
    assert not AccessGrant.objects.exists()
    assert [(e.action, e.outcome) for e in events("access.dialog")] == [("access.dialog", "refused")]


@pytest.mark.django_db
def test_declare_access_without_accepting_the_conditions_is_422(token: dict[str, Any], peppa: Any) -> None:
    _search(token["access_token"], identifier=peppa.matricule)
    response = _declare(token["access_token"], peppa.public_id, accepted=False)
    assert response.status_code == 422
    assert outcome_code(response) == "conditions-not-accepted"
    assert "conditions" in response.json()["issue"][0]["diagnostics"]
    assert not AccessGrant.objects.exists()
    assert [(e.outcome, e.details["reason"]) for e in events("access.grant")] == [
        ("refused", "conditions_not_accepted")
    ]


@pytest.mark.django_db
def test_declare_access_on_an_opposed_record_is_403(token: dict[str, Any]) -> None:
    opposed = make_patient(dossier_state="opposed")
    _search(token["access_token"], identifier=opposed.matricule)
    response = _declare(token["access_token"], opposed.public_id)
    assert response.status_code == 403
    assert outcome_code(response) == "record-opposed"
    assert not AccessGrant.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ("motif=x", "application/x-www-form-urlencoded", 415),
        ("{not json", "application/fhir+json", 400),
        ('{"resourceType": "Patient"}', "application/fhir+json", 400),
        (
            '{"resourceType": "Parameters", "parameter": [{"name": "mode", "valueCode": "spy"}]}',
            "application/fhir+json",
            400,
        ),
    ],
)
def test_declare_access_bad_bodies(
    token: dict[str, Any], peppa: Any, body: str, content_type: str, status: int
) -> None:
    _search(token["access_token"], identifier=peppa.matricule)
    before = len(events())
    response = api(token["access_token"]).post(
        f"/fhir/R4/Patient/{peppa.public_id}/$declare-access", body, content_type=content_type
    )
    assert response.status_code == status
    outcome_code(response)
    assert len(events()) == before
    assert not AccessGrant.objects.exists()


@pytest.mark.django_db
def test_the_portal_links_to_the_authorised_software(pharmacist: Any) -> None:
    portal = Client()
    portal.force_login(pharmacist.user)
    assert 'href="/edocuments/logiciels/"' in portal.get("/edocuments/").content.decode()


@pytest.mark.django_db
def test_patients_shown_to_a_token_are_merged_when_another_request_noted_some_meanwhile(
    software: Any, pharmacist: Any
) -> None:
    """The shown patients are written with one conditional UPDATE; when a concurrent request of
    the same token changed them since this one read its token, they are read again under lock
    and merged: no patient shown is lost."""
    user_token(software, pharmacist)
    token = Token.objects.get()
    stale = Token.objects.get(pk=token.pk)  # this request's token, read before the other's write
    remember_found(token, ["a"])  # the other request: the list was still the one it read
    assert Token.objects.get().found_patients.keys() == {"a"}
    remember_found(stale, ["b"])  # this one: its list is no longer the stored one
    assert Token.objects.get().found_patients.keys() == {"a", "b"}
    assert found_by_search(token, "a") and found_by_search(token, "b") and not found_by_search(token, "c")
