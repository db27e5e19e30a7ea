"""The authorization server: SMART standalone launch (code + PKCE S256), rotating refresh
tokens, revocation, backend services (RFC 7523 assertions, IHE IUA secrets), the throttle."""

import html
import time
import urllib.parse
import uuid
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client, override_settings
from joserfc import jwt
from joserfc.jwk import RSAKey

from esante.fhir.models import SoftwareAuthorisation, SoftwareClient, Token
from esante.fhir.services import software_client_register

from .conftest import (
    AUTHORIZE,
    REDIRECT,
    TOKEN,
    authorization_code,
    authorize_query,
    events,
    pkce,
    user_token,
)


def _exchange(software: SoftwareClient, code: str, verifier: str) -> Any:
    return Client().post(
        TOKEN,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": software.client_id,
            "code_verifier": verifier,
        },
    )


@pytest.mark.django_db
def test_authorize_sends_a_stranger_to_the_portal_login(software: SoftwareClient) -> None:
    _, challenge = pkce()
    url = f"{AUTHORIZE}?{urllib.parse.urlencode(authorize_query(software, challenge))}"
    response = Client().get(url)
    assert response.status_code == 302
    login, _, query = response["Location"].partition("?")
    assert login == "/professionnel/connexion/"
    assert urllib.parse.parse_qs(query)["next"] == [url]
    assert [e.action for e in events()] == ["api.client.register"]


@pytest.mark.django_db
def test_consent_page_names_the_software_and_its_scopes_and_needs_csrf(
    software: SoftwareClient, pharmacist: Any
) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(pharmacist.user)
    _, challenge = pkce()
    url = f"{AUTHORIZE}?{urllib.parse.urlencode(authorize_query(software, challenge))}"
    page = browser.get(url).content.decode()
    assert "PharmaSoft" in page and "Pharmacie du Centre" in page
    assert "Autoriser" in page and "Refuser" in page
    assert "user/MedicationDispense.cu" in page
    assert "csrfmiddlewaretoken" in page
    assert browser.post(url, {"decision": "allow"}).status_code == 403  # no CSRF token
    assert not SoftwareAuthorisation.objects.exists()


@pytest.mark.django_db
def test_authorization_code_with_pkce_gives_short_lived_tokens_and_traces(
    software: SoftwareClient, pharmacist: Any
) -> None:
    token = user_token(software, pharmacist)
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 300
    assert token["refresh_token"]
    stored = Token.objects.get()
    assert token["access_token"] not in (stored.access_digest, stored.refresh_digest)  # stored hashed
    assert stored.user == pharmacist.user
    assert [(e.action, e.outcome, e.actor_id) for e in events()] == [
        ("api.client.register", "success", None),
        ("api.authorise", "success", pharmacist.user.pk),
        ("api.token", "success", pharmacist.user.pk),
    ]
    assert events("api.token")[0].details["client"] == software.client_id


@pytest.mark.django_db
def test_refusing_consent_returns_access_denied_and_is_traced(
    software: SoftwareClient, pharmacist: Any
) -> None:
    browser = Client()
    browser.force_login(pharmacist.user)
    _, challenge = pkce()
    url = f"{AUTHORIZE}?{urllib.parse.urlencode(authorize_query(software, challenge))}"
    response = browser.post(url, {"decision": "deny"})
    assert response.status_code == 302
    assert "error=access_denied" in response["Location"]
    assert not SoftwareAuthorisation.objects.exists()
    assert [(e.action, e.outcome) for e in events("api.authorise")] == [("api.authorise", "refused")]


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["plain", ""])
def test_pkce_s256_is_required(software: SoftwareClient, pharmacist: Any, method: str) -> None:
    browser = Client()
    browser.force_login(pharmacist.user)
    _, challenge = pkce()
    query = {**authorize_query(software, challenge), "code_challenge_method": method}
    response = browser.get(f"{AUTHORIZE}?{urllib.parse.urlencode(query)}")
    assert response.status_code == 302
    assert "error=invalid_request" in response["Location"]
    assert not SoftwareAuthorisation.objects.exists()


@pytest.mark.django_db
def test_unknown_redirect_uri_is_never_followed(software: SoftwareClient, pharmacist: Any) -> None:
    browser = Client()
    browser.force_login(pharmacist.user)
    _, challenge = pkce()
    query = {**authorize_query(software, challenge), "redirect_uri": "https://evil.example/cb"}
    response = browser.get(f"{AUTHORIZE}?{urllib.parse.urlencode(query)}")
    assert response.status_code == 400
    assert "evil.example" not in response.get("Location", "")


@pytest.mark.django_db
def test_wrong_verifier_and_reused_code_are_refused(software: SoftwareClient, pharmacist: Any) -> None:
    browser = Client()
    browser.force_login(pharmacist.user)
    verifier, challenge = pkce()
    code = authorization_code(browser, software, challenge)
    wrong = _exchange(software, code, pkce()[0])
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert not Token.objects.exists()
    assert _exchange(software, code, verifier).status_code == 200
    again = _exchange(software, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert Token.objects.count() == 1
    assert [e.outcome for e in events("api.token")] == ["refused", "success", "refused"]


@pytest.mark.django_db
def test_refresh_tokens_rotate_and_a_replayed_one_revokes_the_family(
    software: SoftwareClient, pharmacist: Any
) -> None:
    first = user_token(software, pharmacist)
    refresh = {"grant_type": "refresh_token", "client_id": software.client_id}
    second = Client().post(TOKEN, {**refresh, "refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.content
    new = second.json()
    assert new["refresh_token"] != first["refresh_token"] and new["access_token"] != first["access_token"]
    replay = Client().post(TOKEN, {**refresh, "refresh_token": first["refresh_token"]})
    assert replay.status_code == 400
    # The stolen-token case: every token of that consent is revoked, the new pair too.
    assert Client().post(TOKEN, {**refresh, "refresh_token": new["refresh_token"]}).status_code == 400
    assert all(t.access_revoked for t in Token.objects.all())


@pytest.mark.django_db
def test_revocation_endpoint(software: SoftwareClient, pharmacist: Any) -> None:
    token = user_token(software, pharmacist)
    response = Client().post(
        "/fhir/R4/auth/revoke", {"token": token["access_token"], "client_id": software.client_id}
    )
    assert response.status_code == 200
    assert Token.objects.get().access_revoked
    assert events("api.revoke")[0].details["by"] == "client"


# --- backend services -------------------------------------------------------------------------


@pytest.fixture
def backend_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "k1"})


@pytest.fixture
def backend(db: Any, backend_key: RSAKey) -> SoftwareClient:
    client, secret = software_client_register(
        name="eServices",
        organisation="Agence eSanté",
        kind="backend",
        scopes=["system/DocumentReference.c"],
        jwks={"keys": [backend_key.as_dict(private=False)]},
    )
    assert secret == ""
    return client


def _assertion(client: SoftwareClient, key: RSAKey, **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": client.client_id,
        "sub": client.client_id,
        "aud": "http://testserver/fhir/R4/auth/token",
        "exp": now + 240,
        "jti": str(uuid.uuid4()),
        **claims,
    }
    return jwt.encode({"alg": "RS384", "kid": "k1"}, body, key, algorithms=["RS384"])


def _backend_token(assertion: str) -> Any:
    return Client().post(
        TOKEN,
        {
            "grant_type": "client_credentials",
            "scope": "system/DocumentReference.c",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )


@pytest.mark.django_db
def test_backend_services_token_with_a_signed_assertion(backend: SoftwareClient, backend_key: RSAKey) -> None:
    response = _backend_token(_assertion(backend, backend_key))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["scope"] == "system/DocumentReference.c"
    assert "refresh_token" not in body
    assert Token.objects.get().user is None


@pytest.mark.django_db
def test_backend_assertion_replay_expiry_audience_and_key_are_checked(
    backend: SoftwareClient, backend_key: RSAKey
) -> None:
    assertion = _assertion(backend, backend_key)
    assert _backend_token(assertion).status_code == 200
    assert _backend_token(assertion).json()["error"] == "invalid_client"  # jti replayed
    other = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    for refused in (
        _assertion(backend, backend_key, exp=int(time.time()) - 120),  # expired
        _assertion(backend, backend_key, exp=int(time.time()) + 3600),  # lives too long
        _assertion(backend, backend_key, aud="https://elsewhere/token"),  # another audience
        _assertion(backend, other),  # not the registered key
    ):
        response = _backend_token(refused)
        assert (response.status_code, response.json()["error"]) == (400, "invalid_client")
    assert Token.objects.count() == 1
    assert [e.outcome for e in events("api.token")] == ["success", *["refused"] * 5]


@pytest.mark.django_db
def test_iua_client_credentials_with_a_secret(db: Any) -> None:
    client, secret = software_client_register(
        name="Labo", organisation="Laboratoire", kind="backend", scopes=["system/DocumentReference.c"]
    )
    assert client.secret_hash and secret not in client.secret_hash
    ok = Client().post(TOKEN, {"grant_type": "client_credentials"}, headers=_basic(client.client_id, secret))
    assert ok.status_code == 200, ok.content
    bad = Client().post(TOKEN, {"grant_type": "client_credentials"}, headers=_basic(client.client_id, "x"))
    assert bad.status_code == 401


def _basic(user: str, password: str) -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.django_db
@override_settings(ESANTE_FHIR_TOKEN_RATE_LIMIT=2)
def test_token_endpoint_is_throttled(backend: SoftwareClient) -> None:
    for _ in range(2):
        assert Client().post(TOKEN, {"grant_type": "client_credentials"}).status_code == 401
    response = Client().post(TOKEN, {"grant_type": "client_credentials"})
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert events("api.token")[-1].details["reason"] == "rate_limited"


@pytest.mark.django_db
def test_add_client_command_shows_the_secret_once(capsys: Any) -> None:
    call_command(
        "add_client",
        "--name",
        "Officine+",
        "--organisation",
        "Pharmacie X",
        "--kind",
        "interactive",
        "--scope",
        "user/Patient.rs user/DocumentReference.rs",
        "--redirect-uri",
        REDIRECT,
    )
    out = capsys.readouterr().out
    secret = out.split("client_secret: ")[1].split()[0]
    client = SoftwareClient.objects.get()
    assert client.check_client_secret(secret)
    assert secret not in client.secret_hash
    assert client.scopes == "user/Patient.rs user/DocumentReference.rs"
    with pytest.raises(Exception, match="Scopes"):
        call_command(
            "add_client",
            "--name",
            "X",
            "--organisation",
            "Y",
            "--kind",
            "interactive",
            "--scope",
            "system/DocumentReference.c",
            "--redirect-uri",
            REDIRECT,
        )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("de", ["Software autorisieren", "Abgaben in Ihrem Namen erfassen", "Ablehnen"]),
        ("en", ["Authorise software", "Record dispensations on your behalf", "Refuse"]),
    ],
)
def test_consent_and_authorised_software_pages_speak_the_browsers_language(
    software: SoftwareClient, pharmacist: Any, language: str, expected: list[str]
) -> None:
    browser = Client(HTTP_ACCEPT_LANGUAGE=language)
    browser.force_login(pharmacist.user)
    _, challenge = pkce()
    url = f"{AUTHORIZE}?{urllib.parse.urlencode(authorize_query(software, challenge))}"
    page = html.unescape(browser.get(url).content.decode())
    for text in expected:
        assert text in page
    assert "Autoriser un logiciel" not in page
    listing = html.unescape(browser.get("/edocuments/logiciels/").content.decode())
    assert {"de": "Autorisierte Software", "en": "Authorised software"}[language] in listing
    assert "Logiciels autorisés" not in listing
