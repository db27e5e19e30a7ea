"""A person's way through the portal, step by step, as the quick guide shows it.

``Journey`` wraps a Playwright page: every ``step`` checks the page with axe-core and saves a
screenshot ``NN-name.png`` under ``test-output/e2e/``. The functions below are the guide's
screens, in its words; tests chain them, and later flows (dispensation) add their own steps on
the same journey.
"""

import contextlib
import hashlib
import io
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page, Response, expect
from pypdf import PdfReader

from .axe import Axe
from .server import Platform, Professional

DESKTOP = {"width": 1280, "height": 800}
TABLET = {"width": 768, "height": 1024}

MOTIF = "Délivrance de médicaments"
# "dd/mm/yyyy hh:mm" ("/" written \x2f: Playwright passes the pattern to the page between slashes)
DOCUMENT_DATE = re.compile(r"^\d{2}\x2f\d{2}\x2f\d{4} \d{2}:\d{2}$")


class Journey:
    """One browser context's page; ``step`` = accessibility check + numbered screenshot.

    ``axe`` None skips the checks: only for setting up (a walk that no test looks at).
    """

    def __init__(
        self,
        page: Page,
        *,
        platform: Platform,
        axe: Axe | None,
        shots: Path | None,
        first: int = 1,
        has_certificate: bool = False,
    ) -> None:
        self.page = page
        self.has_certificate = has_certificate  # the browser holds a LuxTrust-like client certificate
        self.platform = platform
        self.axe = axe
        self.shots = shots
        self.number = first

    def goto(self, path: str) -> Response | None:
        return self.page.goto(self.platform.url + path)

    @contextlib.contextmanager
    def quietly(self) -> Iterator[None]:
        """Steps without screenshots (pages another test already shows); axe still checks them."""
        shots, self.shots = self.shots, None
        try:
            yield
        finally:
            self.shots = shots

    def step(self, name: str) -> None:
        """The page as it is now: screenshot (when this journey keeps them), then axe-core — once
        the page a click may have started loading has loaded (axe cannot run on a document being
        replaced: seen on a loaded machine)."""
        self.page.wait_for_load_state("load")
        self.snapshot(name)
        self.check_accessible(name)

    def snapshot(self, name: str) -> None:
        """A numbered screenshot without the accessibility check: for the operators' admin, Django's
        own pages, whose stock style sheet axe-core faults (the breadcrumbs' link contrast)."""
        if self.shots is not None:
            self.shots.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=self.shots / f"{self.number:02d}-{name}.png", full_page=True)
            self.number += 1

    def check_accessible(self, name: str) -> None:
        if self.axe is None:
            return
        violations = self.axe.violations(self.page)
        assert not violations, (
            f"serious or critical accessibility violations on {name} ({self.page.url}):\n"
            + self.axe.describe(violations)
        )

    def tablet_step(self, name: str) -> None:
        """The same page on a tablet (768×1024, portrait); no horizontal scrolling of the page."""
        self.page.set_viewport_size(TABLET)
        try:
            self.step(name)
            overflow = self.page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{name}: the page is {overflow} px wider than a tablet's screen"
        finally:
            self.page.set_viewport_size(DESKTOP)


@dataclass(frozen=True)
class Activated:
    """A professional activated through the portal: the password chosen, where codes now go."""

    professional: Professional
    password: str
    code_address: str


# --- activation (guide pp.3-9) ----------------------------------------------------------------


def activation_open(journey: Journey) -> None:
    """Pré-étapes: "JE SUIS « Un professionnel »", then "J'active mon compte"; the CGU."""
    page = journey.page
    journey.goto("/")
    journey.step("accueil")
    page.get_by_role("link", name="Je suis un professionnel").click()
    journey.step("espace-professionnel")
    page.get_by_role("link", name="J'active mon compte").click()
    expect(page.get_by_role("heading", name="CONDITIONS GENERALES D'UTILISATION")).to_be_visible()
    journey.step("activation-cgu")
    page.get_by_label("En cochant cette case, j'accepte les Conditions Générales d'Utilisation.").check()
    page.get_by_role("button", name="Activer mon compte").click()


def activation_certificate_step(journey: Journey) -> None:
    """Etape 1 – Associer produit LuxTrust: "Connexion" presents the browser's certificate to the
    certificate origin, which sends it back here; without one, the demo's way past the step."""
    page = journey.page
    expect(page.get_by_role("heading", name="Carte LuxTrust")).to_be_visible()
    journey.step("activation-etape1-luxtrust")
    if journey.has_certificate:
        page.get_by_role("button", name="Connexion", exact=True).click()
    else:
        page.get_by_role("button", name="Continuer sans produit LuxTrust (démonstration)").click()


def activation_code_step(journey: Journey, *, matricule: str, code: str) -> None:
    """Etape 2 – Code d'activation: "Oui", the matricule and the code from the letter."""
    page = journey.page
    expect(page.get_by_role("heading", name="Code d'activation")).to_be_visible()
    expect(page.get_by_label("Oui", exact=True)).to_be_checked()
    page.get_by_label("Matricule *").fill(matricule)
    page.get_by_label("Code d'activation *").fill(code)
    journey.step("activation-etape2-code")
    page.get_by_role("button", name="Etape suivante").click()


def activation_information_step(journey: Journey, *, professional: Professional) -> None:
    """Etape 3 – Informations personnelles: check the data, "Etape suivante"."""
    page = journey.page
    expect(page.get_by_role("heading", name="Informations personnelles")).to_be_visible()
    expect(page.locator("dl.readonly")).to_contain_text(professional.matricule)
    journey.step("activation-etape3-informations")
    page.get_by_role("button", name="Etape suivante").click()


def activation_security_step(
    journey: Journey, *, password: str, channel: str, address: str | None = None
) -> str:
    """Etape 4 – Sécurisation du compte: password, "Mobile" or "E-mail", the code received.

    ``address`` None keeps the number or address the page proposes. Returns where the code went.
    """
    page = journey.page
    expect(page.get_by_role("heading", name="Sécurisation de votre compte")).to_be_visible()
    page.get_by_label("Mot de passe *", exact=True).fill(password)
    page.get_by_label("Confirmation du mot de passe *").fill(password)
    page.get_by_label(channel, exact=True).check()
    address_field = page.get_by_label("Mobile * / E-mail *")
    if address is None:
        address = address_field.input_value()
    else:
        address_field.fill(address)
    journey.step("activation-etape4-securisation")
    before = journey.platform.outbox.mark()
    page.get_by_role("button", name="Valider").click()
    code_field = page.get_by_label("Code reçu par SMS ou par E-mail *")
    expect(code_field).to_be_visible()
    code_field.fill(journey.platform.outbox.code_for(address, since=before))
    journey.step("activation-etape4-code-recu")
    page.locator("form", has=code_field).get_by_role("button", name="Valider").click()
    return address


def activation_confirmation_step(journey: Journey) -> None:
    """Etape 5 – Confirmation: "Votre compte est bien créé et sécurisé !", "Connectez-vous"."""
    page = journey.page
    expect(page.get_by_text("Votre compte est bien créé et sécurisé !")).to_be_visible()
    journey.step("activation-etape5-confirmation")
    page.get_by_role("link", name="Connectez-vous").click()
    expect(page.get_by_role("heading", name="Connexion à votre compte esanté")).to_be_visible()


def activate(
    journey: Journey,
    *,
    professional: Professional,
    code: str,
    password: str,
    channel: str,
    address: str | None = None,
) -> Activated:
    """The five steps of the activation, from the landing page to the login page."""
    activation_open(journey)
    activation_certificate_step(journey)
    activation_code_step(journey, matricule=professional.matricule, code=code)
    activation_information_step(journey, professional=professional)
    code_address = activation_security_step(journey, password=password, channel=channel, address=address)
    activation_confirmation_step(journey)
    return Activated(professional=professional, password=password, code_address=code_address)


# --- login (guide pp.10-11) -------------------------------------------------------------------


def login_with_code(journey: Journey, *, matricule: str, password: str, code_address: str) -> None:
    """The guide's "Matricule, mot de passe et code": matricule and password, then the code received."""
    page = journey.page
    journey.goto("/professionnel/connexion/")
    expect(page.get_by_role("heading", name="Matricule, mot de passe et code")).to_be_visible()
    page.get_by_label("Matricule *").fill(matricule)
    page.get_by_label("Mot de passe *").fill(password)
    journey.step("connexion")
    before = journey.platform.outbox.mark()
    page.get_by_role("button", name="Valider").click()
    code_field = page.get_by_label("Code reçu par SMS ou par E-mail *")
    expect(code_field).to_be_visible()
    code_field.fill(journey.platform.outbox.code_for(code_address, since=before))
    journey.step("connexion-code")
    page.get_by_role("button", name="Valider").click()
    expect(page).to_have_url(re.compile(r"/edocuments/$"))


def login_with_certificate(journey: Journey) -> None:
    """ "SI VOUS AVEZ UN PRODUIT LUXTRUST À VOTRE DISPOSITION": "Connexion", the certificate."""
    page = journey.page
    journey.goto("/professionnel/connexion/")
    luxtrust = page.locator("section", has=page.get_by_role("heading", name=re.compile("AVEZ UN PRODUIT")))
    journey.step("connexion-certificat")
    luxtrust.get_by_role("button", name="Connexion", exact=True).click()
    expect(page).to_have_url(re.compile(r"/edocuments/$"))


# --- eDocuments (guide pp.12-14) --------------------------------------------------------------


def patient_search(journey: Journey, *, matricule: str) -> None:
    """The guide's "eDocuments" → "Recherche patient" → "Numéro assuré" → "VALIDER"."""
    page = journey.page
    page.get_by_role("navigation", name="Navigation principale").get_by_role(
        "link", name="eDocuments"
    ).click()
    journey.step("edocuments")
    page.get_by_role("link", name="Recherche patient").click()
    page.get_by_label("Numéro assuré").fill(matricule)
    journey.step("recherche-patient")
    page.get_by_role("button", name="VALIDER").click()
    expect(page.get_by_text("1 à 1 sur 1 éléments")).to_be_visible()
    journey.step("recherche-resultat")


def patient_open(journey: Journey, *, name: str, motif: str = MOTIF) -> None:
    """Click the patient's name: the record, through the access dialog when there is no access yet."""
    page = journey.page
    page.get_by_role("table").get_by_role("link", name=name, exact=True).click()
    page.wait_for_url(re.compile(r"/patient/[0-9a-f-]+/(acces/)?$"))
    if page.url.endswith("/acces/"):
        access_dialog_accept(journey, motif=motif)


def access_dialog_accept(journey: Journey, *, motif: str = MOTIF) -> None:
    """The guide's "Accès au dossier du patient": "J'accède au dossier du patient en engageant ma
    responsabilité.", the "Motif", "J'accepte les conditions d'accès"."""
    page = journey.page
    expect(page.get_by_role("heading", name="Accès au dossier du patient")).to_be_visible()
    page.get_by_label("J'accède au dossier du patient en engageant ma responsabilité.").check()
    page.get_by_label("Motif : *").select_option(label=motif)
    page.get_by_label("J'accepte les conditions d'accès").check()
    journey.step("acces-dossier")
    page.get_by_role("button", name="Valider").click()


def record_documents_view(journey: Journey) -> None:
    """The record opens on "Vue 360"; "Vue documentaire" lists the documents by class and type."""
    page = journey.page
    expect(page.get_by_role("link", name="Vue 360")).to_have_attribute("aria-current", "page")
    journey.step("dossier-vue-360")
    journey.tablet_step("dossier-vue-360-tablette")
    page.get_by_role("link", name="Vue documentaire").click()
    expect(page.get_by_role("link", name="Vue documentaire")).to_have_attribute("aria-current", "page")
    journey.step("dossier-vue-documentaire")


def medication_prescriptions(journey: Journey) -> Locator:
    """In "Vue documentaire", the entries under "Prescription (n)" > "Traitements médicamenteux (n)"."""
    page = journey.page
    prescriptions = page.locator("details", has=page.get_by_text(re.compile(r"^Prescription \(\d+\)$")))
    medication = prescriptions.locator(
        "details", has=page.get_by_text(re.compile(r"^Traitements médicamenteux \(\d+\)$"))
    )
    return medication.locator("ul.doc-list > li")


def prescription_open(journey: Journey, entry: Locator) -> None:
    """The link on the entry's date opens the prescription in the viewer."""
    entry.get_by_role("link", name=DOCUMENT_DATE).click()
    expect(journey.page.get_by_role("heading", name="Lignes de prescription")).to_be_visible()


# --- dispensation (guide pp.15-16) ------------------------------------------------------------

DISPENSE = "Marquer comme dispensé"
WARNING = (
    "Une prescription marquée comme dispensée (pictogramme rouge) ne devrait normalement plus être utilisée"
)
ACCEPT = "Je comprends et j'accepte ce principe."
FULLY = "Dispensée entièrement"
PARTIALLY = "Dispensée partiellement"
NOT_DISPENSED = "Non dispensée"


def documents_view_open(journey: Journey) -> None:
    """ "Vue documentaire" from the record or a document (``record_documents_view`` shows it)."""
    page = journey.page
    page.get_by_role("link", name="Vue documentaire").click()
    expect(page.get_by_role("link", name="Vue documentaire", exact=True)).to_have_attribute(
        "aria-current", "page"
    )


def prescription_status(entry: Locator) -> Locator:
    """The status pictogram with its text, in a list entry or in the viewer."""
    return entry.locator(".status").first


def dispense_icon(entry: Locator) -> Locator:
    """The dispense icon of a "Vue documentaire" entry (its accessible name: action, title, date)."""
    return entry.get_by_role("link", name=re.compile(rf"^{DISPENSE} : "))


def prescription_lines(journey: Journey) -> list[str]:
    """The medications of the prescription open in the viewer, as "Lignes de prescription" lists them."""
    region = journey.page.get_by_role("region", name="Lignes de prescription")
    return [
        text.strip()
        for text in region.locator("table").first.locator("tbody tr td:first-child").all_inner_texts()
    ]


def _table_rows(table: Locator) -> list[list[str]]:
    return [
        [cell.strip() for cell in row.locator("td").all_inner_texts()]
        for row in table.locator("tbody tr").all()
    ]


def remaining_owed(journey: Journey) -> dict[str, tuple[int, int, int]]:
    """The viewer's "Reste à délivrer" table: medication → (prescribed, delivered so far, remaining)."""
    table = journey.page.get_by_role("table", name="Reste à délivrer")
    expect(table).to_be_visible()
    return {
        medication: (int(prescribed), int(delivered), int(remaining.split()[0]))
        for medication, prescribed, delivered, remaining in _table_rows(table)
    }


def dispense_form(journey: Journey) -> Locator:
    """The "Marquer comme dispensé" form: the viewer's (unfolded from its button) or the page of its own."""
    page = journey.page
    form = page.locator("form", has=page.get_by_role("heading", name=DISPENSE, exact=True))
    if not form.is_visible():
        page.locator("summary", has_text=DISPENSE).click()
    expect(form).to_be_visible()
    return form


def dispense_from_icon(journey: Journey, entry: Locator) -> None:
    """The dispense icon of a "Vue documentaire" entry opens "Marquer comme dispensé" on a page."""
    dispense_icon(entry).click()
    expect(journey.page).to_have_url(re.compile(r"/dispensation/$"))
    expect(journey.page.get_by_role("heading", name=DISPENSE, exact=True)).to_be_visible()


def dispense_mark(journey: Journey, *, name: str, delivered: Mapping[str, int] | None = None) -> None:
    """Fills "Marquer comme dispensé" and validates: "Dispensée entièrement", or with ``delivered``
    (medication → quantity delivered now) "Dispensée partiellement" with the grid; the warning,
    "Je comprends et j'accepte ce principe.", the screenshot ``name``, "Valider"."""
    page = journey.page
    form = dispense_form(journey)
    expect(form.get_by_role("group", name="Status (rouge: dispensé entièrement)")).to_be_visible()
    expect(form.get_by_text(WARNING)).to_be_visible()
    expect(form.get_by_role("link", name="Annuler")).to_be_visible()
    grid = form.get_by_role("group", name="Grille de dispensation (dispensation partielle)")
    if delivered is None:
        form.get_by_label(FULLY).check()
    else:
        form.get_by_label(PARTIALLY).check()
        expect(grid).to_be_visible()
        for medication, quantity in delivered.items():
            grid.get_by_label(f"Délivré maintenant — {medication}").fill(str(quantity))
    validate = form.get_by_role("button", name="Valider")
    validate.click()
    # The acceptance is required: without it the browser keeps the form (and says why).
    expect(form.get_by_label(ACCEPT)).not_to_be_checked()
    expect(form).to_be_visible()
    form.get_by_label(ACCEPT).check()
    journey.step(name)
    validate.click()
    expected = FULLY if delivered is None else PARTIALLY
    expect(page.get_by_role("status").filter(has_text="Prescription marquée comme")).to_contain_text(
        f"Prescription marquée comme {expected.lower()}."
    )
    expect(page.get_by_role("heading", name="Lignes de prescription")).to_be_visible()


@dataclass(frozen=True)
class CertifiedCopyPdf:
    """The certified true copy as the pharmacist downloaded it, and what its text says."""

    data: bytes
    text: str
    code: str
    verification_url: str
    images: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


# Printed in groups ("ND6P-VHH3-…-ZA"), as the verification page accepts it typed by hand.
_VERIFICATION_CODE = re.compile(r"Code de vérification\s*:\s*([A-Z2-7]{2,4}(?:-[A-Z2-7]{1,4})+)")
_VERIFICATION_URL = re.compile(r"(https?://\S+/verifier/[A-Z2-7]{26}/)")


def certified_copy_download(journey: Journey, *, index: int = -1) -> CertifiedCopyPdf:
    """ "Copie certifiée conforme (PDF)" in the viewer's dispensations, downloaded and read with pypdf.

    The copy is made by the job queue's consumer that ``esante serve`` runs: until it is ready the
    viewer says « Copie certifiée en préparation… » and asks again every 2 s (htmx)."""
    page = journey.page
    expect(page.get_by_text("Copie certifiée en préparation…", exact=True)).to_have_count(0, timeout=60_000)
    links = page.get_by_role("link", name=re.compile(r"^Copie certifiée conforme \(PDF\)"))
    link = links.nth(index) if index >= 0 else links.last
    with page.expect_download() as download_info:
        link.click(modifiers=["Alt"])  # Alt+click: Chromium saves the target instead of showing it
    download = download_info.value
    assert download.failure() is None, download.failure()
    path = download.path()
    data = Path(path).read_bytes()
    assert data.startswith(b"%PDF-"), data[:20]
    reader = PdfReader(io.BytesIO(data))
    text = "\n".join(pdf_page.extract_text() or "" for pdf_page in reader.pages)
    code = _VERIFICATION_CODE.search(text)
    url = _VERIFICATION_URL.search(text)
    assert code is not None, f"no verification code in the certified copy:\n{text}"
    assert url is not None, f"no verification address in the certified copy:\n{text}"
    images = sum(len(pdf_page.images) for pdf_page in reader.pages)
    canonical = code[1].replace("-", "")
    assert len(canonical) == 26, code[1]
    return CertifiedCopyPdf(data=data, text=text, code=canonical, verification_url=url[1], images=images)


def certified_copy_verify(journey: Journey, url: str, *, name: str) -> None:
    """The public page ``/verifier/<code>/`` the QR code leads to, opened in this browser."""
    page = journey.page
    page.goto(url)
    expect(page.get_by_role("heading", name="Vérification d'une copie certifiée conforme")).to_be_visible()
    journey.step(name)


def form_post(journey: Journey, path: str, fields: Mapping[str, Any]) -> Response:
    """Submits a form the page does not offer (a forged request), with the page's CSRF token, as a
    browser would; returns the answer of the navigation."""
    page = journey.page
    with page.expect_navigation() as navigation:
        page.evaluate(
            """([action, fields]) => {
                const form = document.createElement('form');
                form.method = 'post';
                form.action = action;
                const token = document.querySelector('input[name=csrfmiddlewaretoken]').value;
                for (const [name, value] of Object.entries({csrfmiddlewaretoken: token, ...fields})) {
                    const input = document.createElement('input');
                    input.type = 'hidden';
                    input.name = name;
                    input.value = String(value);
                    form.appendChild(input);
                }
                document.body.appendChild(form);
                form.submit();
            }""",
            [journey.platform.url + path if path.startswith("/") else path, dict(fields)],
        )
    response = navigation.value
    assert response is not None
    return response


# --- the operators' admin (/operateurs/) ------------------------------------------------------


def admin_action(journey: Journey, *, changelist: str, search: str, action: str) -> Locator:
    """In an admin list (``changelist``, e.g. ``/operateurs/accounts/professional/``): searches
    ``search``, selects the one row found and chooses ``action`` (its label in the "Action" menu).
    Returns the button that runs it ("Envoyer"), for the caller to click (or to wait for a download)."""
    page = journey.page
    journey.goto(f"{changelist}?{urllib.parse.urlencode({'q': search})}")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    rows.first.locator("input.action-select").check()
    page.locator("select[name=action]").select_option(label=action)
    return page.locator("button[name=index]")
