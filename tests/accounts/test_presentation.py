"""The certificate round trip portal -> certificate origin -> portal: nonce and token rules,
refusals with their French messages and audit events."""

import datetime
from typing import Any

import pytest
from django.test import Client
from freezegun import freeze_time

from esante.accounts.models import CertificatePresentation, Professional
from esante.accounts.presentation import STALE
from esante.audit.models import AuditEvent

from .conftest import DAY, NOW, ORIGIN_PATH, Pki, at_origin, make_ca, to_origin
from .test_login import LOGIN, bind

pytestmark = pytest.mark.django_db

START = "/professionnel/connexion/certificat/"


def events(action: str) -> list[tuple[str, Any]]:
    return [
        (event.outcome, event.details.get("reason"))
        for event in AuditEvent.objects.filter(action=action).order_by("sequence")
    ]


def token_url(client: Client, cert: Any) -> str:
    back = at_origin(to_origin(client, START), cert)
    assert back.status_code == 302
    return str(back["Location"])


def test_token_is_single_use(client: Client, pki: Pki, active: Professional) -> None:
    url = token_url(client, bind(pki, active))
    assert client.get(url)["Location"] == "/edocuments/"
    client.post("/professionnel/deconnexion/")
    response = client.get(url)
    assert response["Location"] == LOGIN
    assert "_auth_user_id" not in client.session
    assert STALE.replace("'", "&#x27;") in client.get(LOGIN).content.decode()
    assert events("accounts.certificate.token") == [("refused", "token_used")]
    assert CertificatePresentation.objects.get().certificate_pem == ""  # not kept once used


def test_nothing_secret_is_stored_in_clear(client: Client, pki: Pki, active: Professional) -> None:
    origin_path = to_origin(client, START)
    url = at_origin(origin_path, bind(pki, active))["Location"]
    nonce, token = origin_path.split("demande=")[1], url.split("jeton=")[1]
    row = CertificatePresentation.objects.get()
    assert nonce not in row.request_digest and token not in (row.token_digest or "")
    assert len(row.request_digest) == 64 and len(row.token_digest or "") == 64


@pytest.mark.parametrize(("seconds", "logged_in"), [(59, True), (61, False)])
def test_token_is_valid_one_minute(
    client: Client, pki: Pki, active: Professional, seconds: int, logged_in: bool
) -> None:
    cert = bind(pki, active)
    start = datetime.datetime.now(datetime.UTC)
    with freeze_time(start):
        url = token_url(client, cert)
    with freeze_time(start + datetime.timedelta(seconds=seconds)):
        response = client.get(url)
    assert ("_auth_user_id" in client.session) is logged_in
    if not logged_in:
        assert response["Location"] == LOGIN
        assert events("accounts.certificate.token") == [("refused", "token_expired")]


def test_token_works_only_in_the_session_that_asked(client: Client, pki: Pki, active: Professional) -> None:
    url = token_url(client, bind(pki, active))
    attacker = Client()
    attacker.get(LOGIN)
    assert attacker.get(url)["Location"] == LOGIN
    assert "_auth_user_id" not in attacker.session
    assert events("accounts.certificate.token") == [("refused", "other_session")]
    # Nor can a token be planted in someone else's browser: the victim did not ask for it.
    victim = Client()
    victim.get(LOGIN)
    assert "_auth_user_id" not in victim.session


def test_unknown_token_is_refused(client: Client, db: Any) -> None:
    response = client.get("/professionnel/certificat/retour/?jeton=nope")
    assert response["Location"] == LOGIN
    assert events("accounts.certificate.token") == [("refused", "unknown_token")]


def test_request_nonce_is_single_use_and_expires(client: Client, pki: Pki, active: Professional) -> None:
    cert = bind(pki, active)
    origin_path = to_origin(client, START)
    assert at_origin(origin_path, cert).status_code == 302
    again = at_origin(origin_path, cert)
    assert again.status_code == 400
    assert "n'est plus valable" in again.content.decode()
    start = datetime.datetime.now(datetime.UTC)
    with freeze_time(start):
        late = to_origin(client, START)
    with freeze_time(start + datetime.timedelta(seconds=301)):
        assert at_origin(late, cert).status_code == 400
    assert at_origin(f"{ORIGIN_PATH}?demande=invented", cert).status_code == 400
    assert events("accounts.certificate.present") == [
        ("success", None),
        ("refused", "request_used_or_expired"),
        ("refused", "request_used_or_expired"),
        ("refused", "unknown_request"),
    ]


@pytest.mark.parametrize(
    ("kind", "reason", "message"),
    [
        ("expired", "expired", "Votre certificat a expiré."),
        ("not_yet_valid", "not_yet_valid", "Votre certificat n&#x27;est pas encore valide."),
        ("wrong_ca", "untrusted_issuer", "autorité de certification reconnue (LuxTrust)"),
        ("self_signed", "self_signed", "Les certificats auto-signés ne sont pas acceptés."),
        ("revoked", "revoked", "Ce certificat a été révoqué."),
    ],
)
def test_bad_certificates_are_refused_with_a_clear_message(
    client: Client, pki: Pki, active: Professional, kind: str, reason: str, message: str
) -> None:
    certs = {
        "expired": lambda: pki.issue(not_before=NOW - 400 * DAY, not_after=NOW - DAY),
        "not_yet_valid": lambda: pki.issue(not_before=NOW + DAY, not_after=NOW + 400 * DAY),
        "wrong_ca": lambda: pki.issue(ca=make_ca("Test LuxTrust Global Qualified CA")),
        "self_signed": lambda: pki.issue(self_signed=True),
        "revoked": lambda: bind(pki, active),
    }
    cert = certs[kind]()
    if kind == "revoked":
        pki.revoke(cert)
    assert client.get(token_url(client, cert))["Location"] == LOGIN
    assert message in client.get(LOGIN).content.decode()
    assert "_auth_user_id" not in client.session
    assert events("accounts.login.certificate") == [("failure", reason)]
    assert not AuditEvent.objects.filter(action="accounts.certificate.present", outcome="success").exists()


def test_untrusted_address_cannot_forward_a_certificate(
    client: Client, pki: Pki, active: Professional
) -> None:
    cert = bind(pki, active)
    back = at_origin(to_origin(client, START), cert, REMOTE_ADDR="192.0.2.99")
    client.get(back["Location"])
    assert "_auth_user_id" not in client.session
    assert "Aucun certificat LuxTrust n&#x27;a été présenté" in client.get(LOGIN).content.decode()
    event = AuditEvent.objects.get(action="accounts.login.certificate")
    assert (event.outcome, event.details["reason"], event.client_address) == (
        "failure",
        "no_certificate",
        "192.0.2.99",
    )


def test_without_an_origin_the_portal_says_so(client: Client, settings: Any, db: Any) -> None:
    settings.ESANTE_CERTIFICATE_ORIGIN = ""
    assert client.post(START)["Location"] == LOGIN
    assert "pas disponible sur cette plateforme" in client.get(LOGIN).content.decode()
    assert not CertificatePresentation.objects.exists()


def test_the_portal_itself_never_reads_a_certificate(client: Client, pki: Pki, active: Professional) -> None:
    """The old path (certificate header on the portal's own POST) logs nobody in."""
    from .conftest import forwarded

    response = client.post(START, **forwarded(bind(pki, active)))
    assert response["Location"].startswith("https://certificat.example.lu/")
    assert "_auth_user_id" not in client.session
    assert not AuditEvent.objects.filter(action="accounts.login.certificate").exists()
