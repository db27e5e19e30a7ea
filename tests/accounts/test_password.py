""" "Mot de passe oublié": the explanation page, and a new password chosen in a session that
logged in with the bound certificate — refused (and traced) for any other session."""

import html
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.utils import translation

from esante.accounts.models import LoginThrottle, Professional, User
from esante.audit.models import AuditEvent

from .conftest import PASSWORD, Pki, at_origin, present
from .test_login import CODE, LOGIN, MATRICULE, bind, mailed_code, password_step

pytestmark = pytest.mark.django_db

FORGOTTEN = "/professionnel/mot-de-passe-oublie/"
CHANGE = "/professionnel/mot-de-passe/"
CERTIFICATE_START = "/professionnel/connexion/certificat/"
NEW_PASSWORD = "Verveine-du-jardin-2026"


@pytest.fixture(autouse=True)
def _platform_language_afterwards() -> Iterator[None]:
    """LocaleMiddleware leaves the request's language active in the thread: later tests expect French."""
    yield
    translation.activate(settings.LANGUAGE_CODE)


def page(response: Any) -> str:
    return html.unescape(response.content.decode())


def events() -> list[tuple[str, str, Any]]:
    return [
        (event.outcome, event.details.get("reason", ""), event.details.get("login"))
        for event in AuditEvent.objects.filter(action="accounts.password.change").order_by("sequence")
    ]


def certificate_login(client: Client, pki: Pki, professional: Professional) -> None:
    response = present(client, bind(pki, professional), start_url=CERTIFICATE_START)
    assert response["Location"] == "/edocuments/"


def password_login(client: Client) -> None:
    client.get(LOGIN)
    assert password_step(client)["Location"] == CODE
    assert client.post(CODE, {"code": mailed_code()})["Location"] == "/edocuments/"


def password_hash(professional: Professional) -> str:
    return User.objects.get(pk=professional.user_id).password


# --- the explanation page ------------------------------------------------------------------------


def test_login_page_links_to_the_explanation(client: Client) -> None:
    assert f'href="{FORGOTTEN}">Mot de passe oublié ?</a>' in page(client.get(LOGIN))


@pytest.mark.parametrize(
    ("accept", "lang", "labels"),
    [
        (
            None,
            "fr",
            [
                "Mot de passe oublié ?",
                "SI VOUS AVEZ UN PRODUIT LUXTRUST À VOTRE DISPOSITION",
                "Connectez-vous avec votre produit LuxTrust (« Connexion »).",
                "Choisissez ensuite un nouveau mot de passe.",
                "Demandez un nouveau courrier d'activation à notre helpdesk",
                "elle remplace votre mot de passe et votre moyen de recevoir les codes à usage unique",
            ],
        ),
        (
            "de-DE,de;q=0.9",
            "de",
            [
                "Passwort vergessen?",
                "WENN SIE ÜBER EIN LUXTRUST-PRODUKT VERFÜGEN",
                "Melden Sie sich mit Ihrem LuxTrust-Produkt an („Anmelden“).",
                "Wählen Sie anschließend ein neues Passwort.",
                "Fordern Sie bei unserem Helpdesk",
                "ersetzt Ihr Passwort und Ihr Mittel zum Empfang der Einmalcodes",
            ],
        ),
        (
            "en-GB,en;q=0.9",
            "en",
            [
                "Forgotten your password?",
                "IF YOU HAVE A LUXTRUST PRODUCT AVAILABLE",
                "Log in with your LuxTrust product (“Log in”).",
                "Then choose a new password.",
                "Ask our helpdesk",
                "the activation replaces your password and your means of receiving one-time codes",
            ],
        ),
    ],
)
def test_explanation_page_in_each_language(accept: str | None, lang: str, labels: list[str]) -> None:
    response = Client().get(FORGOTTEN, **({"HTTP_ACCEPT_LANGUAGE": accept} if accept else {}))
    body = page(response)
    assert response.status_code == 200
    assert f'<html lang="{lang}">' in body
    for label in labels:
        assert label in body, label
    assert "(+352) 27 12 50 18 33" in body and "helpdesk@esante.lu" in body
    assert 'href="/professionnel/activation/"' in body


def test_certificate_from_the_explanation_page_leads_to_the_new_password(
    client: Client, pki: Pki, active: Professional
) -> None:
    cert = bind(pki, active)
    client.get(FORGOTTEN)
    start = client.post(f"{CERTIFICATE_START}?next={CHANGE}")
    back = at_origin(start["Location"].split("https://certificat.example.lu", 1)[1], cert)
    assert client.get(back["Location"])["Location"] == CHANGE
    assert client.get(CHANGE).status_code == 200


# --- the new password, with the certificate --------------------------------------------------------


def test_certificate_session_changes_the_password(client: Client, pki: Pki, active: Professional) -> None:
    other = Client()
    other.force_login(active.user)  # another browser of the same professional
    certificate_login(client, pki, active)
    body = page(client.get(CHANGE))
    assert "Nouveau mot de passe *" in body and "Confirmation du mot de passe *" in body
    session_before = client.session.session_key
    response = client.post(CHANGE, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/edocuments/"
    user = User.objects.get(pk=active.user_id)
    assert user.check_password(NEW_PASSWORD) and not user.check_password(PASSWORD)
    # The session is kept under a new key; the other sessions are logged out.
    assert client.session.session_key != session_before
    assert int(client.session["_auth_user_id"]) == active.user_id
    assert "Votre mot de passe a été modifié." in page(client.get(LOGIN))
    assert other.get(CHANGE)["Location"].startswith(LOGIN)
    last = AuditEvent.objects.order_by("sequence").last()
    assert last is not None and last.action == "accounts.password.change" and last.actor_id == active.user_id
    assert events() == [("success", "", None)]


@pytest.mark.parametrize(
    ("password1", "password2", "message"),
    [
        ("court", "court", "Ce mot de passe est trop court. Il doit contenir au minimum 12 caractères."),
        ("1234567890123", "1234567890123", "Ce mot de passe est trop courant."),
        ("1234567890123", "1234567890123", "Ce mot de passe est entièrement numérique."),
        ("luc.schmit@pharma.lu", "luc.schmit@pharma.lu", "Le mot de passe est trop semblable au champ"),
        (NEW_PASSWORD, NEW_PASSWORD + "x", "Les deux mots de passe ne sont pas identiques."),
        ("", "", "Ce champ est obligatoire."),
    ],
)
def test_validators_refuse_in_french(
    client: Client, pki: Pki, active: Professional, password1: str, password2: str, message: str
) -> None:
    certificate_login(client, pki, active)
    before = password_hash(active)
    response = client.post(CHANGE, {"password1": password1, "password2": password2})
    assert response.status_code == 200
    assert message in page(response)
    assert password_hash(active) == before
    assert events() == []


def test_csrf_is_enforced(client: Client, csrf_client: Client, pki: Pki, active: Professional) -> None:
    certificate_login(client, pki, active)
    # The same browser session, now with CSRF checks on (the round trip itself is tested elsewhere).
    cookie = settings.SESSION_COOKIE_NAME
    csrf_client.cookies[cookie] = client.cookies[cookie].value
    before = password_hash(active)
    response = csrf_client.post(CHANGE, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 403
    assert password_hash(active) == before and events() == []
    token = csrf_client.get(CHANGE).context["csrf_token"]
    response = csrf_client.post(
        CHANGE, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "csrfmiddlewaretoken": str(token)}
    )
    assert response.status_code == 302
    assert User.objects.get(pk=active.user_id).check_password(NEW_PASSWORD)


# --- refusals --------------------------------------------------------------------------------------


def test_password_and_code_session_is_refused(client: Client, active: Professional) -> None:
    password_login(client)
    before = password_hash(active)
    response = client.get(CHANGE)
    assert response.status_code == 403
    assert "connectez-vous avec votre produit LuxTrust" in page(response)
    assert events() == []  # a look is not an attempt
    response = client.post(CHANGE, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 403
    assert "connectez-vous avec votre produit LuxTrust" in page(response)
    assert password_hash(active) == before
    assert events() == [("refused", "not_certificate_login", "password+otp")]
    row = LoginThrottle.objects.get(scope=LoginThrottle.Scope.ACCOUNT, key=MATRICULE)
    assert row.failures == 1  # counted towards the account lock
    assert int(client.session["_auth_user_id"]) == active.user_id  # still logged in, nothing else


def test_refusals_lock_the_account(client: Client, active: Professional, settings: Any) -> None:
    settings.ESANTE_ACCOUNT_LOCK_AFTER_FAILURES = 5  # 100 by default
    password_login(client)
    for _ in range(settings.ESANTE_ACCOUNT_LOCK_AFTER_FAILURES):
        client.post(CHANGE, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    response = client.post(CHANGE, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 403
    assert "Trop de tentatives infructueuses" in page(response)
    assert [reason for _, reason, _ in events()][-2:] == ["not_certificate_login", "locked"]
    assert AuditEvent.objects.filter(action="accounts.login.lock").count() == 1
    assert User.objects.get(pk=active.user_id).check_password(PASSWORD)


def test_certificate_unbound_since_login_is_refused(client: Client, pki: Pki, active: Professional) -> None:
    certificate_login(client, pki, active)
    active.certificates.all().delete()
    before = password_hash(active)
    response = client.post(CHANGE, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 403 and password_hash(active) == before
    assert events() == [("refused", "certificate_unbound", "certificate")]


def test_anonymous_is_sent_to_the_login(client: Client, active: Professional) -> None:
    before = password_hash(active)
    response = client.post(CHANGE, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)
    assert password_hash(active) == before and events() == []


def test_forced_login_without_recorded_method_is_refused(client: Client, active: Professional) -> None:
    client.force_login(active.user)
    assert client.get(CHANGE).status_code == 403
    assert client.post(CHANGE, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}).status_code == 403
    assert events() == [("refused", "not_certificate_login", "")]
