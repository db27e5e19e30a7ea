"""French, German and English: the browser's language or the header's switch; dates per language;
complete, compiled catalogues. French is the source language (the msgids), so it has no catalogue."""

import ast
import datetime
import gettext
import html
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import formats, translation

from esante.access.models import AccessGrant
from esante.access.services import AccessRefused
from esante.accounts.models import Professional
from esante.dispensing.refusals import when as _when
from esante.documents.services import document_submit
from esante.patients.models import Patient
from tests.access.factories import make_grant, make_patient, make_professional
from tests.documents.conftest import AT, PEPPA, make_prescription

LOCALE = Path(settings.LOCALE_PATHS[0])
LANGUAGES = ("de", "en")
SEARCH = reverse("access:search")


@pytest.fixture(autouse=True)
def _platform_language_afterwards() -> Iterator[None]:
    """LocaleMiddleware leaves the request's language active in the thread: later tests expect French."""
    yield
    translation.activate(settings.LANGUAGE_CODE)


def page(response: Any) -> str:
    return html.unescape(response.content.decode())


def logged_in(professional: Professional) -> Client:
    client = Client()
    client.force_login(professional.user)
    return client


# --- language chosen by the browser ------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("accept", "lang", "expected"),
    [
        (None, "fr", "Je suis un professionnel"),
        ("de-DE,de;q=0.9,en;q=0.5", "de", "Ich bin eine Gesundheitsfachkraft"),
        ("en-GB,en;q=0.9", "en", "I am a healthcare professional"),
        ("it-IT,it;q=0.9", "fr", "Je suis un professionnel"),  # unsupported: French, the default
    ],
)
def test_landing_page_follows_accept_language(accept: str | None, lang: str, expected: str) -> None:
    headers = {"HTTP_ACCEPT_LANGUAGE": accept} if accept else {}
    response = Client().get("/", **headers)
    body = page(response)
    assert response.status_code == 200
    assert expected in body
    assert f'<html lang="{lang}">' in body
    assert response["Content-Language"] == lang
    assert "(+352) 27 12 50 18 33" in body and "helpdesk@esante.lu" in body  # never translated


@pytest.mark.django_db
def test_french_stays_the_guide_text() -> None:
    body = page(Client().get("/"))
    for label in ("JE SUIS", "Je suis un professionnel", "Des questions?", "Contactez notre helpdesk"):
        assert label in body
    professional = page(Client().get(reverse("core:professional")))
    assert "J'active mon compte" in professional and "Connexion à votre compte esanté" in professional


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("accept", "labels"),
    [
        (None, ["Recherche patient", "Numéro assuré", "Date de naissance", "VALIDER", "Mes patients"]),
        ("de", ["Patientensuche", "Versichertennummer", "Geburtsdatum", "SUCHEN", "Meine Patienten"]),
        ("en", ["Patient search", "Insurance number", "Date of birth", "SEARCH", "My patients"]),
    ],
)
def test_search_page_follows_accept_language(accept: str | None, labels: list[str]) -> None:
    client = logged_in(make_professional("pharmacist"))
    headers = {"HTTP_ACCEPT_LANGUAGE": accept} if accept else {}
    body = page(client.get(SEARCH, **headers))
    for label in labels:
        assert label in body, label


@pytest.mark.django_db
def test_form_errors_and_refusals_are_translated() -> None:
    client = logged_in(make_professional("pharmacist"))
    criteria = {"name": "", "first_name": "", "matricule": "12", "birth_date": ""}
    german = page(client.post(SEARCH, criteria, HTTP_ACCEPT_LANGUAGE="de"))
    assert "Die Matrikelnummer muss 13 Ziffern haben (2 eingegeben)." in german
    english = page(client.post(SEARCH, {**criteria, "matricule": ""}, HTTP_ACCEPT_LANGUAGE="en"))
    assert "Narrow the search: enter the insurance number (matricule)" in english
    french = page(client.post(SEARCH, criteria))
    assert "Le matricule doit comporter 13 chiffres (2 saisis)." in french
    with translation.override("de"):
        assert AccessRefused("record_closed").message == (
            "Die Akte dieses Patienten ist geschlossen: Kein Zugriff möglich."
        )
        assert str(AccessRefused.MESSAGES["motif_too_short"]).endswith("(mindestens 20 Zeichen).")
    assert AccessRefused("record_closed").message == (
        "Le dossier de ce patient est fermé : aucun accès n'est possible."
    )


@pytest.mark.django_db
def test_access_motif_is_traced_in_french_whatever_the_language() -> None:
    pharmacist = make_professional("pharmacist")
    patient = make_patient()
    client = logged_in(pharmacist)
    client.post(SEARCH, {"matricule": patient.matricule})  # the dialog opens for a patient found
    response = client.post(
        reverse("access:dialog", args=[patient.public_id]),
        {"mode": "care", "motif_choice": "dispensation", "motif_text": "", "accept_conditions": "on"},
        HTTP_ACCEPT_LANGUAGE="de",
    )
    assert response.status_code == 302
    assert AccessGrant.objects.get(professional=pharmacist).motif == "Délivrance de médicaments"


# --- the header's switch -----------------------------------------------------------------------


@pytest.mark.django_db
def test_header_has_a_labelled_language_switch_with_csrf() -> None:
    body = Client().get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    form = re.search(r'<form class="language" action="([^"]+)" method="post">(.*?)</form>', body, re.S)
    assert form is not None
    assert form[1] == reverse("set_language") == "/i18n/setlang/"
    inner = form[2]
    assert 'name="csrfmiddlewaretoken"' in inner
    assert '<label for="langue">Language</label>' in inner
    assert '<select id="langue" name="language">' in inner
    options = re.findall(r'<option value="(\w+)" lang="\w+"( selected)?>([^<]+)</option>', inner)
    assert [(code, name) for code, _, name in options] == [
        ("fr", "Français"),
        ("de", "Deutsch"),
        ("en", "English"),
    ]
    assert [code for code, selected, _ in options if selected] == ["en"]
    assert '<button type="submit" class="button secondary">Change language</button>' in inner


@pytest.mark.django_db
def test_switch_sets_the_language_for_the_next_pages() -> None:
    client = logged_in(make_professional("pharmacist"))
    client.handler.enforce_csrf_checks = True
    body = client.get(SEARCH).content.decode()
    assert "Recherche patient" in body
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body)
    assert token is not None

    refused = client.post(reverse("set_language"), {"language": "de"})
    assert refused.status_code == 403  # no CSRF token, no change

    switched = client.post(
        reverse("set_language"),
        {"language": "de", "csrfmiddlewaretoken": token[1]},
        HTTP_REFERER=f"http://testserver{SEARCH}",
    )
    assert switched.status_code == 302 and switched["Location"] == f"http://testserver{SEARCH}"
    assert switched.cookies[settings.LANGUAGE_COOKIE_NAME].value == "de"
    german = page(client.get(SEARCH, HTTP_ACCEPT_LANGUAGE="en"))  # the choice wins over the browser
    assert "Patientensuche" in german and '<html lang="de">' in german

    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', german)
    assert token is not None
    client.post(reverse("set_language"), {"language": "en", "csrfmiddlewaretoken": token[1]})
    assert "Patient search" in page(client.get("/edocuments/"))


@pytest.mark.django_db
def test_switch_ignores_an_unknown_language_and_a_foreign_return_address() -> None:
    client = Client()
    response = client.post(
        reverse("set_language"), {"language": "xx"}, HTTP_REFERER="https://evil.example/phish"
    )
    assert response.status_code == 302 and response["Location"] == "/"
    assert settings.LANGUAGE_COOKIE_NAME not in response.cookies
    assert "Je suis un professionnel" in page(client.get("/"))


# --- dates and numbers per language ------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "date", "moment"),
    [
        ("fr", "20/11/1904", "25/11/2026 22:14"),
        ("de", "20.11.1904", "25.11.2026 22:14"),
        ("en", "20 Nov 1904", "25 Nov 2026, 22:14"),
    ],
)
def test_formats_per_language(lang: str, date: str, moment: str) -> None:
    with translation.override(lang):
        assert formats.date_format(datetime.date(1904, 11, 20), "SHORT_DATE_FORMAT") == date
        assert formats.date_format(AT, "SHORT_DATETIME_FORMAT") == moment


@pytest.mark.parametrize(("lang", "number"), [("fr", "12,5"), ("de", "12,5"), ("en", "12.5")])
def test_decimal_numbers_per_language(lang: str, number: str) -> None:
    with translation.override(lang):
        assert formats.localize(12.5) == number


def test_refusal_dates_per_language() -> None:
    moment = datetime.datetime(2026, 11, 25, 21, 14, tzinfo=datetime.UTC)  # 22:14 in Luxembourg
    with translation.override("fr"):
        assert _when(moment) == "25/11/2026 à 22:14"
    with translation.override("de"):
        assert _when(moment) == "25.11.2026 um 22:14"
    with translation.override("en"):
        assert _when(moment) == "25 Nov 2026 at 22:14"


@pytest.fixture
def peppa_record(db: None) -> tuple[Patient, Professional]:
    peppa = Patient.objects.create(
        matricule=PEPPA,
        birth_name="PIG",
        first_names="Peppa",
        birth_date=datetime.date(1904, 11, 20),
        sex="F",
        taux=100,
        dossier_number="1664927202",
        platform_identifier="1700000151",
    )
    document_submit(content=make_prescription(), source_system="eServices")
    pharmacist = make_professional("pharmacist")
    make_grant(pharmacist, peppa)
    return peppa, pharmacist


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (
            None,
            ["Né(e) le 20/11/1904", "25/11/2026 22:14", "Prescription (1)", "Traitements médicamenteux (1)"],
        ),
        (
            "de",
            [
                "Geboren am 20.11.1904",
                "25.11.2026 22:14",
                "Verschreibung (1)",
                "Medikamentöse Behandlungen (1)",
                "Nicht abgegeben",
                "Dokumentenansicht",
            ],
        ),
        (
            "en",
            [
                "Born on 20 Nov 1904",
                "25 Nov 2026, 22:14",
                "Prescription (1)",
                "Medication treatments (1)",
                "Not dispensed",
                "Document view",
            ],
        ),
    ],
)
def test_record_page_dates_and_labels_per_language(
    peppa_record: tuple[Patient, Professional], accept: str | None, expected: list[str]
) -> None:
    peppa, pharmacist = peppa_record
    headers = {"HTTP_ACCEPT_LANGUAGE": accept} if accept else {}
    body = page(
        logged_in(pharmacist).get(f"/edocuments/patient/{peppa.public_id}/?vue=documentaire", **headers)
    )
    for text in expected:
        assert text in body, text


@pytest.mark.parametrize(
    ("accept", "expected"), [(None, "20/11/1904"), ("de", "20.11.1904"), ("en", "20 Nov 1904")]
)
def test_search_results_dates_per_language(
    peppa_record: tuple[Patient, Professional], accept: str | None, expected: str
) -> None:
    _, pharmacist = peppa_record
    headers = {"HTTP_ACCEPT_LANGUAGE": accept} if accept else {}
    criteria = {"name": "", "first_name": "", "matricule": PEPPA, "birth_date": ""}
    body = page(logged_in(pharmacist).post(SEARCH, criteria, **headers))
    assert f"<td>{expected}</td>" in body


# --- the catalogues ----------------------------------------------------------------------------


@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)


def read_po(path: Path) -> list[Entry]:
    """A tiny .po reader (polib is not a dependency): msgid, msgid_plural, msgstr[n], flags."""
    entries: list[Entry] = []
    entry, key = Entry(), ""

    def close() -> None:
        nonlocal entry
        if entry.msgstr or entry.msgid:
            entries.append(entry)
        entry = Entry()

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            close()
            continue
        if line.startswith("#,"):
            entry.flags |= {flag.strip() for flag in line[2:].split(",")}
            continue
        if line.startswith("#"):
            continue
        if line.startswith('"'):
            quoted = line  # a continuation of the current keyword
        else:
            key, _, quoted = line.partition(" ")
        value: str = ast.literal_eval(quoted)
        if key == "msgid":
            entry.msgid += value
        elif key == "msgid_plural":
            entry.msgid_plural = (entry.msgid_plural or "") + value
        else:
            index = int(key.removeprefix("msgstr").strip("[]") or 0)
            entry.msgstr[index] = entry.msgstr.get(index, "") + value
    close()
    return entries


PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\w+\}")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_entry_is_translated(lang: str) -> None:
    entries = read_po(LOCALE / lang / "LC_MESSAGES" / "django.po")
    header, messages = entries[0], entries[1:]
    assert header.msgid == "" and f"Language: {lang}\n" in header.msgstr[0]
    assert "fuzzy" not in header.flags
    assert len(messages) > 250
    for entry in messages:
        assert "fuzzy" not in entry.flags, entry.msgid
        forms = [0, 1] if entry.msgid_plural is not None else [0]
        for form in forms:
            translated = entry.msgstr.get(form, "")
            assert translated, (lang, entry.msgid)
            # The same placeholders, so that interpolation neither fails nor drops a value.
            assert set(PLACEHOLDER.findall(translated)) == set(PLACEHOLDER.findall(entry.msgid)), (
                lang,
                entry.msgid,
            )


@pytest.mark.parametrize("lang", LANGUAGES)
def test_compiled_catalogue_matches_the_po_file(lang: str) -> None:
    """The .mo files are committed (CI machines may lack gettext): they must not lag the .po."""
    directory = LOCALE / lang / "LC_MESSAGES"
    with (directory / "django.mo").open("rb") as fh:
        compiled = gettext.GNUTranslations(fh)
    for entry in read_po(directory / "django.po")[1:]:
        if entry.msgid_plural is None:
            assert compiled.gettext(entry.msgid) == entry.msgstr[0], entry.msgid
        else:
            assert compiled.ngettext(entry.msgid, entry.msgid_plural, 1) == entry.msgstr[0], entry.msgid
            assert compiled.ngettext(entry.msgid, entry.msgid_plural, 2) == entry.msgstr[1], entry.msgid


@pytest.mark.parametrize("lang", LANGUAGES)
def test_msgfmt_finds_nothing_untranslated(lang: str) -> None:
    msgfmt = shutil.which("msgfmt")
    if msgfmt is None:
        pytest.skip("GNU gettext (msgfmt) is not installed")
    result = subprocess.run(  # noqa: S603 - fixed arguments, our own file
        [
            msgfmt,
            "--check",
            "--statistics",
            "-o",
            "/dev/null",
            str(LOCALE / lang / "LC_MESSAGES" / "django.po"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"\d+ translated messages\.\n", result.stderr), result.stderr


@pytest.mark.parametrize("lang", LANGUAGES)
def test_catalogue_holds_every_translatable_string(lang: str, tmp_path: Path) -> None:
    """``makemessages`` over a copy of the package finds no string that the catalogue lacks: a
    page's ``{% translate %}`` or a ``gettext`` without an entry would show French in German."""
    if shutil.which("xgettext") is None:
        pytest.skip("GNU gettext (xgettext) is not installed")
    package = Path(settings.LOCALE_PATHS[0]).parent
    copy = tmp_path / "esante"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [
            sys.executable,
            "-m",
            "django",
            "makemessages",
            "-l",
            lang,
            "--no-obsolete",
            "--no-location",
        ],
        cwd=copy,
        env={**os.environ, "PYTHONPATH": str(tmp_path), "DJANGO_SETTINGS_MODULE": "esante.settings"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = {e.msgid for e in read_po(copy / "locale" / lang / "LC_MESSAGES" / "django.po")[1:]}
    ours = {e.msgid for e in read_po(LOCALE / lang / "LC_MESSAGES" / "django.po")[1:]}
    assert found - ours == set()
