"""The usual cast of the API tests: registered software, a pharmacist's token, FHIR validation."""

import base64
import functools
import hashlib
import json
import os
import secrets
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from fhir.resources.R4B import get_fhir_model_class
from joserfc import jwt
from joserfc.jwk import RSAKey

from esante.accounts.models import Professional
from esante.audit.models import AuditEvent
from esante.fhir.models import SoftwareClient
from esante.fhir.services import software_client_register
from tests.access.factories import make_professional

from . import outside

REDIRECT = "https://pharmacie.example.lu/callback"
USER_SCOPES = [
    "user/AuditEvent.rs",
    "user/Patient.rs",
    "user/DocumentReference.rs",
    "user/MedicationRequest.rs",
    "user/MedicationDispense.cu",
    "user/Binary.r",
]
AUTHORIZE = "/fhir/R4/auth/authorize"
TOKEN = "/fhir/R4/auth/token"


def validate(body: dict[str, Any]) -> Any:
    """The response parsed by fhir.resources' R4B model of its type (raises when invalid)."""
    return get_fhir_model_class(body["resourceType"]).model_validate(body)


def outcome_code(response: Any) -> str:
    assert response["Content-Type"].startswith("application/fhir+json"), response["Content-Type"]
    body = response.json()
    validate(body)
    assert body["resourceType"] == "OperationOutcome"
    return str(body["issue"][0]["details"]["coding"][0]["code"])


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def events(*actions: str) -> list[AuditEvent]:
    queryset = AuditEvent.objects.order_by("sequence")
    return list(queryset.filter(action__in=actions) if actions else queryset)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    cache.clear()


#: ``ESANTE_FHIR_CORPUS=DIR``: every FHIR JSON response the API tests receive lands in ``DIR``
#: (one file per distinct body), for ``python -m tests.fhir.outside DIR`` to validate.
CORPUS = os.environ.get("ESANTE_FHIR_CORPUS", "")


@pytest.fixture(autouse=True)
def _fhir_corpus(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if not CORPUS:
        yield
        return
    directory = Path(CORPUS)
    directory.mkdir(parents=True, exist_ok=True)
    request = Client.request

    def recording(self: Client, **wsgi: Any) -> Any:
        response = request(self, **wsgi)
        if response.get("Content-Type", "").startswith("application/fhir+xml"):
            outside.write_xml(directory, response.content, "xml")
        elif response.get("Content-Type", "").startswith("application/fhir+json"):
            try:
                body = json.loads(response.content)
            except ValueError:
                return response
            if isinstance(body, dict) and "resourceType" in body:
                outside.write(directory, body)
        return response

    monkeypatch.setattr(Client, "request", recording)
    yield


@pytest.fixture
def software(db: Any) -> SoftwareClient:
    client, _ = software_client_register(
        name="PharmaSoft",
        organisation="Pharmacie du Centre",
        kind="interactive",
        scopes=USER_SCOPES,
        redirect_uris=[REDIRECT],
        public=True,
    )
    return client


@pytest.fixture
def pharmacist(db: Any) -> Professional:
    return make_professional("pharmacist")


def authorize_query(
    software: SoftwareClient, challenge: str, scope: str = " ".join(USER_SCOPES)
) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": software.client_id,
        "redirect_uri": REDIRECT,
        "scope": scope,
        "state": "etat-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "aud": "http://testserver/fhir/R4",
    }


def authorization_code(browser: Client, software: SoftwareClient, challenge: str, **query: str) -> str:
    params = {**authorize_query(software, challenge), **query}
    url = f"{AUTHORIZE}?{urllib.parse.urlencode(params)}"
    assert browser.get(url).status_code == 200
    response = browser.post(url, {"decision": "allow"})
    assert response.status_code == 302, response.content
    location = urllib.parse.urlparse(response["Location"])
    returned = urllib.parse.parse_qs(location.query)
    assert returned["state"] == ["etat-123"]
    return returned["code"][0]


def user_token(
    software: SoftwareClient, professional: Professional, scope: str | None = None
) -> dict[str, Any]:
    """A token for ``professional`` by the authorization code flow (PKCE), as the software gets it."""
    browser = Client()
    browser.force_login(professional.user)
    verifier, challenge = pkce()
    extra = {"scope": scope} if scope is not None else {}
    code = authorization_code(browser, software, challenge, **extra)
    response = Client().post(
        TOKEN,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": software.client_id,
            "code_verifier": verifier,
        },
    )
    assert response.status_code == 200, response.content
    return dict(response.json())


@pytest.fixture
def token(software: SoftwareClient, pharmacist: Professional) -> dict[str, Any]:
    return user_token(software, pharmacist)


def api(access_token: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {access_token}", "Accept": "application/fhir+json"})


@functools.cache
def _eservices_key() -> RSAKey:
    """One RSA key for every test's eService (generating one costs more than the test)."""
    return RSAKey.generate_key(2048, parameters={"kid": "e1"})


@pytest.fixture
def eservices_token(db: Any) -> str:
    key = _eservices_key()
    client, _ = software_client_register(
        name="eServices", organisation="Agence eSanté", kind="backend",
        scopes=["system/DocumentReference.c"], jwks={"keys": [key.as_dict(private=False)]},
    )  # fmt: skip
    claims = {
        "iss": client.client_id, "sub": client.client_id, "aud": f"http://testserver{TOKEN}",
        "exp": int(time.time()) + 240, "jti": str(uuid.uuid4()),
    }  # fmt: skip
    assertion = jwt.encode({"alg": "RS384", "kid": "e1"}, claims, key, algorithms=["RS384"])
    response = Client().post(
        TOKEN,
        {
            "grant_type": "client_credentials",
            "scope": "system/DocumentReference.c",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )
    assert response.status_code == 200, response.content
    return str(response.json()["access_token"])
