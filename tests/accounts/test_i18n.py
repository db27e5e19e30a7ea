"""The accounts pages in French (the default and the guide's text), German and English: login,
one-time code, activation terms and wizard, refusals and locks, the one-time code messages."""

import datetime
import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client
from django.utils import translation
from freezegun import freeze_time

from esante import accounts
from esante.accounts.delivery import code_deliver
from esante.accounts.models import CertificatePresentation, Professional
from esante.accounts.throttling import account_lock_message, delay_message, lock_message

from .conftest import DAY, NOW, ORIGIN_PATH, PASSWORD, Pki, at_origin, present

pytestmark = pytest.mark.django_db

LOGIN = "/professionnel/connexion/"
CODE = "/professionnel/connexion/code/"
ACTIVATION = "/professionnel/activation/"
STEP1 = f"{ACTIVATION}etape/1/"
MATRICULE = "19800101002"


@pytest.fixture(autouse=True)
def _platform_language_afterwards() -> Iterator[None]:
    """LocaleMiddleware leaves the request's language active in the thread: later tests expect French."""
    yield
    translation.activate(settings.LANGUAGE_CODE)


def page(response: Any) -> str:
    return html.unescape(response.content.decode())


def headers(accept: str | None) -> dict[str, str]:
    return {"HTTP_ACCEPT_LANGUAGE": accept} if accept else {}


@pytest.mark.parametrize(
    ("accept", "lang", "labels"),
    [
        (
            None,
            "fr",
            [
                "Connexion à votre compte esanté",
                "SI VOUS AVEZ UN PRODUIT LUXTRUST À VOTRE DISPOSITION",
                "Matricule, mot de passe et code",
                "Matricule *",
                "Mot de passe *",
                ">Valider</button>",
                "Mot de passe oublié ?",
            ],
        ),
        (
            "de-DE,de;q=0.9,en;q=0.5",
            "de",
            [
                "Anmeldung bei Ihrem eSanté-Konto",
                "WENN SIE ÜBER EIN LUXTRUST-PRODUKT VERFÜGEN",
                "Matrikelnummer, Passwort und Code",
                "Matrikelnummer *",
                "Passwort *",
                ">Bestätigen</button>",
                "Passwort vergessen?",
            ],
        ),
        (
            "en-GB,en;q=0.9",
            "en",
            [
                "Log in to your eSanté account",
                "IF YOU HAVE A LUXTRUST PRODUCT AVAILABLE",
                "Matricule, password and code",
                "Matricule *",
                "Password *",
                ">Confirm</button>",
                "Forgotten your password?",
            ],
        ),
    ],
)
def test_login_page_follows_accept_language(accept: str | None, lang: str, labels: list[str]) -> None:
    response = Client().get(LOGIN, **headers(accept))
    body = page(response)
    assert response.status_code == 200
    assert f'<html lang="{lang}">' in body and response["Content-Language"] == lang
    for label in labels:
        assert label in body, label
    assert "(+352) 27 12 50 18 33" in body and "helpdesk@esante.lu" in body  # never translated


@pytest.mark.parametrize(
    ("accept", "lang", "labels", "binding_note"),
    [
        (
            None,
            "fr",
            [
                "ACTIVATION DE MON COMPTE",
                "PRÉ-REQUIS",
                "Vous ne retrouvez plus votre courrier d'activation?",
                "CONDITIONS GENERALES D'UTILISATION",
                "Téléchargeables en PDF en cliquant ici",
                "En cochant cette case, j'accepte les Conditions Générales d'Utilisation.",
                "Activer mon compte",
            ],
            None,
        ),
        (
            "de",
            "de",
            [
                "AKTIVIERUNG MEINES KONTOS",
                "VORAUSSETZUNGEN",
                "Sie finden Ihr Aktivierungsschreiben nicht mehr?",
                "ALLGEMEINE NUTZUNGSBEDINGUNGEN",
                "Hier als PDF herunterladen",
                "Mit dem Ankreuzen dieses Feldes akzeptiere ich die Allgemeinen Nutzungsbedingungen.",
                "Mein Konto aktivieren",
            ],
            "Rechtsverbindlich ist die unten wiedergegebene französische Fassung",
        ),
        (
            "en",
            "en",
            [
                "ACTIVATING MY ACCOUNT",
                "PREREQUISITES",
                "Can't find your activation letter?",
                "GENERAL TERMS OF USE",
                "Click here to download them as a PDF",
                "By ticking this box, I accept the General Terms of Use.",
                "Activate my account",
            ],
            "The French version of the General Terms of Use, reproduced below, is the legally binding one.",
        ),
    ],
)
def test_activation_terms_page_follows_accept_language(
    accept: str | None, lang: str, labels: list[str], binding_note: str | None
) -> None:
    response = Client().get(ACTIVATION, **headers(accept))
    body = page(response)
    assert response.status_code == 200
    assert f'<html lang="{lang}">' in body and response["Content-Language"] == lang
    for label in labels:
        assert label in body, label
    # The terms themselves are a legal document: French, like their PDF, and marked as such.
    assert '<div class="terms" lang="fr"' in body and "1. Objet" in body
    if binding_note is None:
        assert "font foi" not in body
    else:
        assert binding_note in body


def test_terms_page_has_no_inline_style_for_the_csp() -> None:
    body = Client().get(ACTIVATION).content.decode()
    assert "style=" not in body
    assert '<label for="id_accept" class="accept-label">' in body
    css = (Path(accounts.__file__).parent / "static" / "accounts" / "accounts.css").read_text()
    assert "label.accept-label { display: inline; }" in css


def test_terms_refusal_and_wizard_steps_are_translated() -> None:
    client = Client()
    refused = page(client.post(ACTIVATION, {"accept": ""}, HTTP_ACCEPT_LANGUAGE="en"))
    assert "You must accept the General Terms of Use to continue." in refused
    assert client.post(ACTIVATION, {"accept": "on"}, HTTP_ACCEPT_LANGUAGE="de")["Location"] == STEP1
    step = page(client.get(STEP1, HTTP_ACCEPT_LANGUAGE="de"))
    for label in (
        "DIE AKTIVIERUNG DES PLATTFORMKONTOS ERFOLGT IN FÜNF SCHRITTEN",
        'aria-label="Schritte der Aktivierung"',
        "<span>1</span> LuxTrust-Karte",
        "<span>2</span> Aktivierungscode",
        "<span>3</span> Persönliche Angaben",
        "<span>4</span> Absicherung Ihres Kontos",
        "<span>5</span> Bestätigung",
        "Klicken Sie auf „Anmelden“",
    ):
        assert label in step, label
    french = page(client.get(STEP1))
    assert "<span>1</span> Carte LuxTrust" in french and "<span>5</span> Confirmation" in french


def test_activation_code_step_in_english(client: Client, registered: Any, settings: Any) -> None:
    settings.ESANTE_ACTIVATION_CERTIFICATE_OPTIONAL = True
    english = {"HTTP_ACCEPT_LANGUAGE": "en"}
    client.post(ACTIVATION, {"accept": "on"}, **english)
    assert client.post(STEP1, {"skip": "1"}, **english)["Location"] == f"{ACTIVATION}etape/2/"
    step2 = f"{ACTIVATION}etape/2/"
    body = page(client.get(step2, **english))
    for label in ("Have you received your activation code?", "Yes", "No", "Matricule *", "Activation code *"):
        assert label in body, label
    assert ">Previous step</button>" in body and ">Next step</button>" in body
    empty = page(client.post(step2, {"received": "oui", "matricule": "", "code": ""}, **english))
    assert empty.count("This field is required.") == 2
    wrong = {"received": "oui", "matricule": "19750315006", "code": "ABCD-EFGH"}
    assert "The matricule or the activation code is incorrect." in page(client.post(step2, wrong, **english))
    assert "Le matricule ou le code d'activation est incorrect." in page(client.post(step2, wrong))
    without = page(client.post(step2, {"received": "non"}, **english))
    assert "Without an activation letter, you cannot activate your account." in without


def test_login_refusals_and_lock_follow_the_language(client: Client, active: Professional) -> None:
    def attempt(accept: str | None) -> str:
        return page(client.post(LOGIN, {"matricule": MATRICULE, "password": "wrong"}, **headers(accept)))

    empty = {"matricule": "", "password": ""}
    assert "This field is required." in page(client.post(LOGIN, empty, HTTP_ACCEPT_LANGUAGE="en"))
    assert "Ce champ est obligatoire." in page(client.post(LOGIN, empty))
    start = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.UTC)
    with freeze_time(start):
        assert "Matrikelnummer oder Passwort ist falsch." in attempt("de")
        assert "Incorrect matricule or password." in attempt("en")
        delayed = attempt("de")  # the third failure of this address on this account
        assert "von Ihrer Adresse aus" in delayed
        assert "Versuchen Sie es nach dem 02.03.2026 um 10:01:00 Uhr (Luxemburger Zeit) erneut" in delayed
        assert "Try again after 02 Mar 2026 at 10:01:00 (Luxembourg time)" in attempt("en")
        assert "Réessayez après le 02/03/2026 à 10:01:00 (heure de Luxembourg)" in attempt(None)


def test_delay_and_account_lock_messages_per_language() -> None:
    until = datetime.datetime(2026, 11, 25, 21, 14, 30, tzinfo=datetime.UTC)  # 22:14:30 in Luxembourg
    assert "Réessayez après le 25/11/2026 à 22:14:30 (heure de Luxembourg)." in delay_message(until)
    assert "produit LuxTrust (« Connexion ») reste possible." in account_lock_message(until)
    with translation.override("de"):
        assert "nach dem 25.11.2026 um 22:14:30 Uhr (Luxemburger Zeit)" in delay_message(until)
        assert "LuxTrust-Produkt („Anmelden“) bleibt möglich." in account_lock_message(until)
    with translation.override("en"):
        assert "Try again after 25 Nov 2026 at 22:14:30 (Luxembourg time)." in delay_message(until)
        assert "LuxTrust product (“Log in”) remains possible." in account_lock_message(until)


def test_lock_message_per_language() -> None:
    until = datetime.datetime(2026, 11, 25, 21, 14, tzinfo=datetime.UTC)  # 22:14 in Luxembourg
    assert "Réessayez après le 25/11/2026 à 22:14 (heure de Luxembourg)" in lock_message(until)
    with translation.override("de"):
        assert "nach dem 25.11.2026 um 22:14 Uhr (Luxemburger Zeit)" in lock_message(until)
    with translation.override("en"):
        assert "Try again after 25 Nov 2026 at 22:14 (Luxembourg time)" in lock_message(until)


def test_one_time_code_is_sent_and_announced_in_the_request_language(
    client: Client, active: Professional
) -> None:
    response = client.post(LOGIN, {"matricule": MATRICULE, "password": PASSWORD}, HTTP_ACCEPT_LANGUAGE="de")
    assert response["Location"] == CODE
    sent = mail.outbox[-1]
    assert sent.subject == "eSanté: Ihr Einmalcode"
    assert re.search(r"Ihr Einmalcode lautet \d{6}\. Er ist 5 Minuten gültig\.", sent.body)
    code_page = page(client.get(CODE, HTTP_ACCEPT_LANGUAGE="de"))
    assert "Ein Einmalcode wurde Ihnen per E-Mail gesendet. Er ist 5 Minuten gültig." in code_page
    assert "Per SMS oder E-Mail erhaltener Code *" in code_page and "Neuen Code anfordern" in code_page
    wrong = page(client.post(CODE, {"code": "12"}, HTTP_ACCEPT_LANGUAGE="en"))
    assert "The code has 6 digits." in wrong
    french = page(client.get(CODE))
    assert "Un code à usage unique vous a été envoyé par e-mail. Il est valable 5 minutes." in french


def test_sms_text_follows_the_active_language() -> None:
    with translation.override("en"):
        code_deliver(channel="sms", address="+352621111222", code="654321")
    code_deliver(channel="sms", address="+352621111222", code="123456")
    texts = [
        json.loads(path.read_text())["text"] for path in sorted(Path(settings.OUTBOX_DIR).glob("*.json"))
    ]
    assert texts == [
        "eSanté: your one-time code is 654321. It is valid for 5 minutes. Do not share it with anyone.",
        "eSanté : votre code à usage unique est 123456. Il est valable 5 minutes. "
        "Ne le communiquez à personne.",
    ]


def test_certificate_refusal_is_stored_in_french_and_shown_in_the_language(client: Client, pki: Pki) -> None:
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    assert client.post(ACTIVATION, {"accept": "on"})["Location"] == STEP1
    expired = pki.issue(not_before=NOW - 400 * DAY, not_after=NOW - DAY)
    assert present(client, expired, start_url=STEP1)["Location"] == STEP1
    assert "Your certificate has expired." in page(client.get(STEP1))
    assert CertificatePresentation.objects.get().refusal_message == "Votre certificat a expiré."


def test_stale_certificate_origin_page_follows_accept_language() -> None:
    german = at_origin(f"{ORIGIN_PATH}?demande=invented", None, HTTP_ACCEPT_LANGUAGE="de")
    assert german.status_code == 400
    body = page(german)
    assert '<html lang="de">' in body
    assert "Diese Anfrage zur Anmeldung mit Zertifikat ist nicht mehr gültig" in body
    assert "Fragen? Kontaktieren Sie unseren Helpdesk: (+352) 27 12 50 18 33" in body
    french = page(at_origin(f"{ORIGIN_PATH}?demande=invented", None))
    assert '<html lang="fr">' in french and "n'est plus valable (déjà utilisée ou expirée)" in french
