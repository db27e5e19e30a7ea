"""The patients' portal in a real browser: Peppa activates her area with her letter's code,
logs in, sees in « Mon journal d'accès » the pharmacist who has just opened her record, refuses
Dr Weber, hides a document; Dr Weber then gets the same « Dossier introuvable » as for a
stranger's record. Every page is checked by axe-core and photographed.

What this test changes on the shared server (Weber's refusal, the hidden document) is undone
at its end, whatever happened, so the other browser tests see Peppa's record as the demo left it.
"""

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from .journey import Journey, login_with_code, patient_open, patient_search
from .server import Professional

pytestmark = pytest.mark.e2e

PEPPA = "1904112000166"
PASSWORD = "Tisane-de-camomille-42"
EMAIL = "peppa.pig@example.lu"


def _patient_activates(walk: Journey, code: str) -> None:
    page = walk.page
    walk.goto("/")
    page.get_by_role("link", name="Je suis un patient").click()
    walk.step("espace-patient")
    page.get_by_role("link", name="Activer mon espace patient").click()
    page.get_by_label("Matricule *").fill(PEPPA)
    page.get_by_label("Code d'activation *").fill(code)
    letter = page.get_by_role("region", name="Code d'activation")
    letter.get_by_label("En cochant cette case, j'accepte les Conditions Générales d'Utilisation.").check()
    walk.step("activation-patient-code")
    page.get_by_role("button", name="Etape suivante").click()
    expect(page.get_by_role("heading", name="Sécurisation de votre compte")).to_be_visible()
    page.get_by_label("Mot de passe *", exact=True).fill(PASSWORD)
    page.get_by_label("Confirmation du mot de passe *").fill(PASSWORD)
    page.get_by_label("E-mail", exact=True).check()
    page.get_by_label("Mobile * / E-mail *").fill(EMAIL)
    walk.step("activation-patient-securisation")
    before = walk.platform.outbox.mark()
    page.get_by_role("button", name="Valider").click()
    code_field = page.get_by_label("Code reçu par SMS ou par E-mail *")
    expect(code_field).to_be_visible()
    code_field.fill(walk.platform.outbox.code_for(EMAIL, since=before))
    walk.step("activation-patient-confirmation")
    page.get_by_role("button", name="Valider").click()
    expect(page.get_by_text("Votre espace patient est activé. Connectez-vous.")).to_be_visible()


def _patient_logs_in(walk: Journey) -> None:
    page = walk.page
    walk.goto("/patient/connexion/")
    page.get_by_label("Matricule *").fill(PEPPA)
    page.get_by_label("Mot de passe *").fill(PASSWORD)
    walk.step("connexion-patient")
    before = walk.platform.outbox.mark()
    page.get_by_role("button", name="Valider").click()
    page.get_by_label("Code reçu par SMS ou par E-mail *").fill(
        walk.platform.outbox.code_for(EMAIL, since=before)
    )
    page.get_by_role("button", name="Valider").click()
    expect(page.get_by_role("link", name="Mon dossier")).to_have_attribute("aria-current", "page")
    walk.step("mon-dossier")


def test_peppa_sees_who_opened_her_record_refuses_a_doctor_and_hides_a_document(
    journey: Callable[..., Journey], cast: dict[str, Professional]
) -> None:
    patient = journey(first=90)
    _patient_activates(patient, patient.platform.issue_patient_activation(PEPPA))
    _patient_logs_in(patient)

    # The pharmacist of the guide opens Peppa's record.
    claudine = cast["Claudine Kremer"]
    pharmacy = journey(screenshots=False)
    login_with_code(
        pharmacy, matricule=claudine.matricule, password=claudine.password, code_address=claudine.email
    )
    patient_search(pharmacy, matricule=PEPPA)
    patient_open(pharmacy, name="PIG")
    found = re.search(r"/patient/([0-9a-f-]+)/", pharmacy.page.url)
    assert found is not None
    record_path = f"/edocuments/patient/{found[1]}/"

    page = patient.page
    page.get_by_role("link", name="Mon journal d'accès").click()
    journal = page.get_by_role("table")
    expect(journal).to_contain_text("KREMER Claudine")
    expect(journal).to_contain_text("Pharmacie du Globe")
    expect(journal).to_contain_text("Ouverture du dossier")
    expect(journal).to_contain_text("Délivrance de médicaments")
    patient.step("mon-journal")
    # The server's sequencer puts the events in the public log within seconds: the lines say so,
    # and a line's page gives what the standalone verifier needs.
    logged = page.get_by_role(
        "link", name=re.compile(r"^vérifié dans le journal public, point de contrôle \d+$")
    )
    for _ in range(20):
        if logged.count():
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(logged.first).to_be_visible()
    logged.first.click()
    expect(page.get_by_role("heading", name="Vérifier une ligne du journal")).to_be_visible()
    expect(
        page.get_by_text(re.compile(r"python -m esante\.tlog\.verify .* --salt [0-9a-f]{64}"))
    ).to_be_visible()
    patient.step("verifier-une-ligne")

    weber = cast["Marc Weber"]
    try:
        # « Mes choix »: refuse Dr Weber, hide the first document.
        page.get_by_role("link", name="Mes choix").click()
        page.get_by_label("Nom du professionnel").fill("Weber")
        page.get_by_role("button", name="Rechercher").click()
        patient.step("mes-choix-recherche")
        page.get_by_role("listitem").filter(has_text="WEBER Marc").get_by_role(
            "link", name="Refuser l'accès"
        ).click()
        expect(page.get_by_role("heading", name="Refuser l'accès à ce professionnel ?")).to_be_visible()
        patient.step("refuser-confirmation")
        page.get_by_role("button", name="Refuser l'accès").click()
        expect(page.get_by_text("Ce professionnel ne peut plus accéder à votre dossier.")).to_be_visible()
        hidden = page.locator("section", has=page.get_by_role("heading", name="Documents masqués"))
        hidden.get_by_role("link", name="Masquer").first.click()
        expect(page.get_by_role("heading", name="Masquer ce document ?")).to_be_visible()
        patient.step("masquer-confirmation")
        page.get_by_role("button", name="Masquer").click()
        expect(page.get_by_text("Le document est masqué aux professionnels.")).to_be_visible()
        patient.step("mes-choix")

        # Dr Weber now finds no record, as for a stranger's.
        doctor = journey(screenshots=False)
        login_with_code(doctor, matricule=weber.matricule, password=weber.password, code_address=weber.email)
        response = doctor.goto(record_path)
        assert response is not None and response.status == 404
        expect(doctor.page.get_by_role("heading", name="Dossier introuvable")).to_be_visible()

        page.get_by_role("link", name="Mon journal d'accès").click()
        expect(page.get_by_role("table")).to_contain_text("Refus d'un professionnel par le patient")
        expect(page.get_by_role("table")).to_contain_text("Document masqué par le patient")
        patient.step("mon-journal-choix")
    finally:
        with patient.quietly():
            patient.goto("/patient/choix/")
            lift = page.get_by_role("link", name="Lever le refus")
            if lift.count():
                lift.first.click()
                page.get_by_role("button", name="Lever le refus").click()
            show = page.get_by_role("link", name="Afficher")
            if show.count():
                show.first.click()
                page.get_by_role("button", name="Afficher").click()
            patient.goto("/patient/choix/")
            expect(page.get_by_role("link", name="Lever le refus")).to_have_count(0)
            expect(page.get_by_role("link", name="Afficher")).to_have_count(0)
