"""A real client against the real platform: fhirpy talking to ``esante serve`` on a free port.

The pharmacist's software gets a token by the authorization code flow with PKCE (the portal
login scripted with ``requests``: matricule, password, the one-time code from the demo's
outbox, then "Autoriser"), searches Peppa by identifier through POST ``_search``, declares an
access with ``$declare-access`` and finds her prescriptions; every response validates with
fhir.resources' R4B models. Marked ``slow``: it loads the demo data set and serves it.
"""

import base64
import hashlib
import re
import secrets
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import ResourceNotFound

from tests.e2e.server import Platform

from .conftest import validate

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PEPPA = "1904112000166"
REDIRECT = "http://127.0.0.1:9/callback"
SCOPES = " ".join(
    [
        "user/Patient.rs",
        "user/DocumentReference.rs",
        "user/MedicationRequest.rs",
        "user/MedicationDispense.cu",
    ]
    + ["offline_access"]
)
_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    import os

    served = Platform(
        tmp_path_factory.mktemp("fhir-live") / "data",
        ROOT / "test-output" / "fhir-live" / "server.log",
        database_url=os.environ.get("DATABASE_URL"),
    )
    served.prepare()
    try:
        served.start()
        yield served
    finally:
        served.stop()
        served.database.drop()


def _csrf(html: str) -> str:
    match = _CSRF.search(html)
    assert match, html[:500]
    return match[1]


def _token(platform: Platform, client_id: str, name: str) -> dict[str, Any]:
    professional = platform.professionals[name]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "scope": SCOPES,
            "state": "s1",
            "aud": f"{platform.url}/fhir/R4",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    browser = requests.Session()
    login = browser.get(f"{platform.url}/fhir/R4/auth/authorize?{query}", timeout=10)
    assert login.url.startswith(f"{platform.url}/professionnel/connexion/")
    before = platform.outbox.mark()
    code_page = browser.post(
        login.url,
        {
            "matricule": professional.matricule,
            "password": professional.password,
            "csrfmiddlewaretoken": _csrf(login.text),
        },
        headers={"Referer": login.url},
        timeout=10,
    )
    one_time = platform.outbox.code_for(professional.email, since=before)
    consent = browser.post(
        code_page.url,
        {"code": one_time, "csrfmiddlewaretoken": _csrf(code_page.text)},
        headers={"Referer": code_page.url},
        timeout=10,
    )
    assert "Autoriser" in consent.text and "Logiciel de test" in consent.text, consent.url
    answer = browser.post(
        consent.url,
        {"decision": "allow", "csrfmiddlewaretoken": _csrf(consent.text)},
        headers={"Referer": consent.url},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302, answer.text[:300]
    code = urllib.parse.parse_qs(urllib.parse.urlparse(answer.headers["Location"]).query)["code"][0]
    token = requests.post(
        f"{platform.url}/fhir/R4/auth/token",
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": client_id,
            "code_verifier": verifier,
        },
        timeout=10,
    )
    assert token.status_code == 200, token.text
    return dict(token.json())


def test_a_pharmacists_day_through_the_api(
    platform: Platform,
) -> None:
    output = platform.command(
        "add_client", "--name", "Logiciel de test", "--organisation", "Pharmacie du test",
        "--kind", "interactive", "--public", "--redirect-uri", REDIRECT,
        "--scope", "user/Patient.rs", "--scope", "user/DocumentReference.rs",
        "--scope", "user/MedicationRequest.rs user/MedicationDispense.cu",
    )  # fmt: skip
    client_id = re.search(r"^client_id: (\S+)$", output, re.MULTILINE)[1]  # type: ignore[index]
    token = _token(platform, client_id, "Claudine Kremer")
    assert token["expires_in"] == 300 and token["refresh_token"]

    fhir = SyncFHIRClient(f"{platform.url}/fhir/R4", authorization=f"Bearer {token['access_token']}")
    validate(fhir.execute("metadata", method="get"))

    found = fhir.execute(
        "Patient/_search",
        data={
            "resourceType": "Parameters",
            "parameter": [{"name": "identifier", "valueString": f"urn:oid:1.3.182.4.4|{PEPPA}"}],
        },
    )
    validate(found)
    assert found["total"] == 1
    peppa = found["entry"][0]["resource"]
    assert peppa["name"][0]["family"].upper() == "PIG"

    with pytest.raises(ResourceNotFound):
        fhir.resources("DocumentReference").search(patient=peppa["id"]).fetch()

    declared = fhir.execute(
        f"Patient/{peppa['id']}/$declare-access",
        data={
            "resourceType": "Parameters",
            "parameter": [
                {"name": "motif", "valueString": "Délivrance d'une ordonnance"},
                {"name": "mode", "valueCode": "care"},
                {"name": "conditionsAccepted", "valueBoolean": True},
            ],
        },
    )
    validate(declared)

    bundle = fhir.execute(
        "DocumentReference", method="get", params={"patient": peppa["id"], "type": "http://loinc.org|57833-6"}
    )
    validate(bundle)
    assert bundle["total"] >= 3
    documents = fhir.resources("DocumentReference").search(patient=peppa["id"]).fetch()
    assert documents
    for document in documents:
        validate(dict(document))
    attachment = bundle["entry"][0]["resource"]["content"][0]["attachment"]
    content = requests.get(
        attachment["url"], headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=10
    )
    assert content.status_code == 200
    assert content.headers["Content-Type"] == attachment["contentType"]
    assert "sandbox" in content.headers["Content-Security-Policy"]

    # The pharmacist's day goes on: a partial delivery, the rest, and a third attempt refused.
    lines = fhir.execute(
        "MedicationRequest", method="get", params={"patient": peppa["id"], "status": "active"}
    )
    validate(lines)
    line = lines["entry"][0]["resource"]
    owed = line["extension"][0]["valueQuantity"]["value"]
    assert owed >= 1

    def dispense(quantity: int, version: str) -> requests.Response:
        return requests.post(
            f"{platform.url}/fhir/R4/MedicationDispense",
            json={
                "resourceType": "MedicationDispense",
                "status": "completed",
                "authorizingPrescription": [{"reference": f"MedicationRequest/{line['id']}"}],
                "quantity": {"value": quantity},
            },
            headers={
                "Authorization": f"Bearer {token['access_token']}",
                "Content-Type": "application/fhir+json",
                "If-Match": f'W/"{version}"',
            },
            timeout=60,
        )

    version = line["meta"]["versionId"]
    if owed > 1:
        partial = dispense(1, version)
        assert partial.status_code == 201, partial.text
        validate(partial.json())
        version = str(int(version) + 1)
        owed -= 1
    rest = dispense(owed, version)
    assert rest.status_code == 201, rest.text
    validate(rest.json())
    third = dispense(1, str(int(version) + 1))  # up to date, but nothing is owed on this line any more
    assert third.status_code == 409, third.text
    validate(third.json())
    assert third.json()["resourceType"] == "OperationOutcome"


def test_eservices_submit_a_prescription_with_a_backend_token(platform: Platform, tmp_path: Path) -> None:
    import json
    import time
    import uuid

    from joserfc import jwt
    from joserfc.jwk import RSAKey

    key = RSAKey.generate_key(2048, parameters={"kid": "live"})
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    output = platform.command(
        "add_client", "--name", "eServices de test", "--organisation", "Agence", "--kind", "backend",
        "--scope", "system/DocumentReference.c", "--jwks", str(keys),
    )  # fmt: skip
    client_id = re.search(r"^client_id: (\S+)$", output, re.MULTILINE)[1]  # type: ignore[index]
    token_url = f"{platform.url}/fhir/R4/auth/token"
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "exp": int(time.time()) + 240,
        "jti": str(uuid.uuid4()),
    }
    assertion = jwt.encode({"alg": "RS384", "kid": "live"}, claims, key, algorithms=["RS384"])
    token = requests.post(
        token_url,
        {
            "grant_type": "client_credentials",
            "scope": "system/DocumentReference.c",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
        timeout=10,
    )
    assert token.status_code == 200, token.text
    fhir = SyncFHIRClient(f"{platform.url}/fhir/R4", authorization=f"Bearer {token.json()['access_token']}")
    binary = f"urn:uuid:{uuid.uuid4()}"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": {"resourceType": "List", "status": "current", "mode": "working"},
             "request": {"method": "POST", "url": "List"}},
            {"request": {"method": "POST", "url": "DocumentReference"},
             "resource": {"resourceType": "DocumentReference", "status": "current",
                          "masterIdentifier": {"value": "LIVE-1"},
                          "type": {"coding": [{"system": "http://loinc.org", "code": "10160-0"}]},
                          "subject": {"identifier": {"system": "urn:oid:1.3.182.4.4", "value": PEPPA}},
                          "date": "2026-11-30T10:00:00+01:00", "description": "Historique",
                          "author": [{"display": "Dr Marc Weber"}],
                          "content": [{"attachment": {"contentType": "text/plain", "url": binary}}]}},
            {"fullUrl": binary, "request": {"method": "POST", "url": "Binary"},
             "resource": {"resourceType": "Binary", "contentType": "text/plain", "data": "SGlzdG9yaXF1ZS4="}},
        ],
    }  # fmt: skip
    answer = fhir.execute("", data=bundle)
    validate(answer)
    assert [e["response"]["status"] for e in answer["entry"]] == ["201 Created"] * 3
