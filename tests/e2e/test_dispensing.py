"""Guide pp.15-16: "Marquer comme dispensé", fully and partially with the dispensation grid, the
certified true copy and its public verification; the next pharmacist sees what remains owed and
delivers it; a doctor gets no dispense action; a pharmacist without access sees nothing.

Each test dispenses a prescription of Peppa's that no other test touches, so the tests hold in
any order and whatever the other browser tests did on the shared server before them.
"""

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from .journey import (
    DISPENSE,
    FULLY,
    NOT_DISPENSED,
    PARTIALLY,
    Activated,
    Journey,
    access_dialog_accept,
    certified_copy_download,
    certified_copy_verify,
    dispense_form,
    dispense_from_icon,
    dispense_icon,
    dispense_mark,
    documents_view_open,
    form_post,
    login_with_code,
    medication_prescriptions,
    patient_open,
    patient_search,
    prescription_lines,
    prescription_open,
    prescription_status,
    remaining_owed,
)
from .server import Professional

pytestmark = pytest.mark.e2e

PEPPA = "1904112000166"
PEPPA_DATA = ("PIG", "Peppa", PEPPA, "20/11/1904")

# "Vue documentaire" lists Peppa's three prescriptions newest first: the demo dates them a second
# apart, DEMO-PEPPA-RX-3, then -2, then -1. Each test below dispenses its own.
RX3, RX2, RX1 = 0, 1, 2
IBUPROFENE = "IBUPROFENE 400 mg comprimés"
OMEPRAZOLE = "OMEPRAZOLE 20 mg gélules"
VITAMINE_D3 = "VITAMINE D3 25 000 UI ampoules"
SALBUTAMOL = "SALBUTAMOL 100 µg/dose aérosol"
AMOXICILLINE = "AMOXICILLINE 1 g comprimés"
PARACETAMOL = "PARACETAMOL 500 mg comprimés"

RED = "rgb(179, 38, 30)"  # --red of the portal's style sheet


def peppa_documents(walk: Journey, *, matricule: str, password: str, code_address: str, motif: str) -> None:
    """Logged in, Peppa's record open (through the access dialog if needed), "Vue documentaire"."""
    with walk.quietly():
        login_with_code(walk, matricule=matricule, password=password, code_address=code_address)
        patient_search(walk, matricule=PEPPA)
        patient_open(walk, name="PIG", motif=motif)
        documents_view_open(walk)
    expect(medication_prescriptions(walk)).to_have_count(3)


def words(text: str) -> str:
    """A pattern of ``text`` whatever the line breaks of the PDF's table cells."""
    return r"\s+".join(re.escape(word) for word in text.split())


def grid_row(medication: str, *numbers: int) -> re.Pattern[str]:
    """A row of the PDF's dispensation grid as pypdf extracts it: the medication then its numbers
    (prescribed, delivered, remaining)."""
    return re.compile(words(medication) + "".join(rf"\s+{n}" for n in numbers) + r"\b")


def test_pharmacist_marks_one_prescription_fully_and_another_partially_with_a_certified_copy(
    journey: Callable[..., Journey], cast: dict[str, Professional]
) -> None:
    claudine = cast["Claudine Kremer"]
    walk = journey(first=75)
    page = walk.page
    peppa_documents(
        walk,
        matricule=claudine.matricule,
        password=claudine.password,
        code_address=claudine.email,
        motif="Délivrance de médicaments",
    )
    entries = medication_prescriptions(walk)
    expect(prescription_status(entries.nth(RX2))).to_contain_text(NOT_DISPENSED)
    expect(prescription_status(entries.nth(RX3))).to_contain_text(NOT_DISPENSED)
    for index in range(3):
        if NOT_DISPENSED in prescription_status(entries.nth(index)).inner_text():
            expect(dispense_icon(entries.nth(index))).to_be_visible()
    walk.step("dispensation-vue-documentaire")

    # Fully, from the documentary view's icon.
    dispense_from_icon(walk, entries.nth(RX2))
    # The right prescription: its line is in the (hidden, "entièrement" being chosen) grid.
    expect(page.locator(".grid-partial td", has_text=SALBUTAMOL).first).to_be_attached()
    expect(page.locator(".grid-partial").first).to_be_hidden()
    dispense_mark(walk, name="dispensation-entiere-formulaire")
    assert prescription_lines(walk) == [SALBUTAMOL]
    status = prescription_status(page.get_by_role("region", name="Lignes de prescription"))
    expect(status).to_contain_text(FULLY)
    expect(status).to_have_css("color", RED)
    expect(page.locator("summary", has_text=DISPENSE)).to_have_count(0)
    assert remaining_owed(walk) == {SALBUTAMOL: (3, 3, 0)}
    walk.step("dispensation-entiere-prescription")

    # Partially, from the viewer, with the grid: part of each line (all of the single gélule).
    documents_view_open(walk)
    prescription_open(walk, entries.nth(RX3))
    assert prescription_lines(walk) == [IBUPROFENE, OMEPRAZOLE, VITAMINE_D3]
    dispense_mark(
        walk, name="dispensation-partielle-grille", delivered={IBUPROFENE: 1, OMEPRAZOLE: 1, VITAMINE_D3: 1}
    )
    # Answered at once: the copy is the job queue's work (``esante serve`` runs its consumer).
    expect(
        page.get_by_text(
            re.compile(
                r"Copie certifiée en préparation…|La copie certifiée conforme est prête à être imprimée\."
            )
        ).first
    ).to_be_visible()
    status = prescription_status(page.get_by_role("region", name="Lignes de prescription"))
    expect(status).to_contain_text(PARTIALLY)
    assert remaining_owed(walk) == {IBUPROFENE: (2, 1, 1), OMEPRAZOLE: (1, 1, 0), VITAMINE_D3: (3, 1, 2)}
    expect(page.locator("summary", has_text=DISPENSE)).to_have_count(1)  # the rest can still be delivered
    walk.step("dispensation-partielle-prescription")
    viewer_url = page.url
    document_id = viewer_url.rstrip("/").rsplit("/", 1)[-1]

    # The certified true copy: the prescription, the filled grid, the statement, the QR code.
    copy = certified_copy_download(walk)
    for expected in (
        "Copie certifiée conforme",
        document_id,
        "Grille de dispensation",
        "Pharmacie du Globe",
        "Claudine Kremer",
        "PIG Peppa",
        "certifie que la présente copie est conforme",
    ):
        assert re.search(words(expected), copy.text), f"{expected!r} missing from the copy:\n{copy.text}"
    # Grid: prescribed, delivered, remaining.
    for row in (grid_row(IBUPROFENE, 2, 1, 1), grid_row(OMEPRAZOLE, 1, 1, 0), grid_row(VITAMINE_D3, 3, 1, 2)):
        assert row.search(copy.text), f"grid row {row.pattern} missing from the certified copy:\n{copy.text}"
    assert re.search(
        words(
            f"Reste à délivrer à la date de la copie : {IBUPROFENE} : 1 boîte ; {OMEPRAZOLE} : 0 boîte ; "
            f"{VITAMINE_D3} : 2 ampoule"
        ),
        copy.text,
    ), copy.text
    assert copy.verification_url == f"{walk.platform.url}/verifier/{copy.code}/"
    assert copy.images >= 1, "the certified copy carries no QR code image"

    # The address of the QR code: authentic, current, the PDF's fingerprint; the pharmacist with
    # access also sees what remains owed.
    certified_copy_verify(walk, copy.verification_url, name="verification-copie-pharmacien")
    expect(page.locator(".status", has_text="Copie authentique")).to_be_visible()
    expect(page.locator(".status", has_text="Copie en vigueur")).to_be_visible()
    expect(page.get_by_text("C'est la copie en vigueur de cette prescription.")).to_be_visible()
    expect(page.get_by_text(document_id, exact=True)).to_be_visible()
    expect(page.locator("code", has_text=copy.sha256)).to_be_visible()
    expect(page.get_by_role("cell", name=VITAMINE_D3)).to_be_visible()

    # Anyone presenting the copy: authentic and current, no clinical content.
    public = journey(first=walk.number)
    certified_copy_verify(public, copy.verification_url, name="verification-copie-publique")
    expect(public.page.locator(".status", has_text="Copie authentique")).to_be_visible()
    expect(public.page.locator(".status", has_text="Copie en vigueur")).to_be_visible()
    expect(public.page.locator("code", has_text=copy.sha256)).to_be_visible()
    text = public.page.locator("body").inner_text()
    shown = [v for v in (*PEPPA_DATA, IBUPROFENE, OMEPRAZOLE, VITAMINE_D3, "Reste à délivrer") if v in text]
    assert not shown, f"the public verification page shows {shown}"
    forged = copy.code[:-1] + ("A" if copy.code[-1] != "A" else "B")
    response = public.page.goto(f"{walk.platform.url}/verifier/{forged}/")
    assert response is not None and response.status == 404
    expect(public.page.get_by_role("alert")).to_contain_text("Code de vérification inconnu")
    public.step("verification-code-inconnu")
    walk.number = public.number

    # Back to the record: both statuses in the list, in words and in shape, the full one red.
    page.get_by_role("link", name="Ouvrir la prescription dans eDocuments").click()
    expect(page).to_have_url(viewer_url)
    documents_view_open(walk)
    full, partial = prescription_status(entries.nth(RX2)), prescription_status(entries.nth(RX3))
    expect(full).to_contain_text(f"■ {FULLY}")
    expect(full).to_have_css("color", RED)
    expect(partial).to_contain_text(f"◐ {PARTIALLY}")
    expect(partial).not_to_have_css("color", RED)
    expect(dispense_icon(entries.nth(RX2))).to_have_count(0)
    expect(dispense_icon(entries.nth(RX3))).to_be_visible()
    # Each dispensation is filed in the record as an eDispensation document, under its own type.
    expect(page.get_by_text(re.compile(r"^Dispensations de médicaments \(\d+\)$"))).to_be_visible()
    walk.step("dispensation-statuts-liste")


def test_next_pharmacist_sees_what_remains_owed_and_delivers_it_a_pharmacist_without_access_nothing(
    journey: Callable[..., Journey],
    cast: dict[str, Professional],
    register_professional: Callable[..., Activated],
) -> None:
    # João delivers part of a prescription and prints the certified copy for the patient.
    joao = cast["João Da Silva"]
    first = journey(screenshots=False)
    peppa_documents(
        first,
        matricule=joao.matricule,
        password=joao.password,
        code_address=joao.email,
        motif="Délivrance de médicaments",
    )
    prescription_open(first, medication_prescriptions(first).nth(RX1))
    assert prescription_lines(first) == [AMOXICILLINE, PARACETAMOL]
    dispense_mark(first, name="reste-premiere-delivrance", delivered={AMOXICILLINE: 1})
    joao_copy = certified_copy_download(first)
    assert grid_row(AMOXICILLINE, 2, 1, 1).search(joao_copy.text), joao_copy.text
    assert grid_row(PARACETAMOL, 1, 0, 1).search(joao_copy.text), joao_copy.text
    viewer_path = first.page.url.removeprefix(first.platform.url)
    copy_path = (
        first.page.get_by_role("link", name=re.compile(r"^Copie certifiée conforme")).get_attribute("href")
        or ""
    )
    assert copy_path.endswith(".pdf"), copy_path

    # Another pharmacist, who has never opened Peppa's record, with the patient at the counter.
    paul = register_professional(profession="pharmacist", first_name="Paul", last_name="Muller")
    walk = journey(first=85)
    page = walk.page
    with walk.quietly():
        login_with_code(
            walk,
            matricule=paul.professional.matricule,
            password=paul.password,
            code_address=paul.code_address,
        )
        patient_search(walk, matricule=PEPPA)
    page.get_by_role("table").get_by_role("link", name="PIG", exact=True).click()
    access_dialog_accept(walk, motif="Délivrance de médicaments")
    documents_view_open(walk)
    entry = medication_prescriptions(walk).nth(RX1)
    expect(prescription_status(entry)).to_contain_text(PARTIALLY)
    expect(dispense_icon(entry)).to_be_visible()
    walk.step("reste-vue-documentaire")

    prescription_open(walk, entry)
    assert prescription_lines(walk) == [AMOXICILLINE, PARACETAMOL]
    assert remaining_owed(walk) == {AMOXICILLINE: (2, 1, 1), PARACETAMOL: (1, 0, 1)}
    recorded = page.get_by_role("heading", name="Dispensations enregistrées").locator(
        "xpath=following-sibling::ul[1]/li"
    )
    expect(recorded).to_have_count(1)
    expect(recorded).to_contain_text(PARTIALLY)
    expect(recorded).to_contain_text("Pharmacie de la Gare, João Da Silva")
    walk.step("reste-a-delivrer")

    # "Dispensée entièrement" now delivers what remains: the prescription is fully dispensed.
    dispense_mark(walk, name="reste-formulaire")
    assert remaining_owed(walk) == {AMOXICILLINE: (2, 2, 0), PARACETAMOL: (1, 1, 0)}
    status = prescription_status(page.get_by_role("region", name="Lignes de prescription"))
    expect(status).to_contain_text(FULLY)
    expect(status).to_have_css("color", RED)
    expect(recorded).to_have_count(2)
    expect(recorded.last).to_contain_text(FULLY)
    expect(recorded.last).to_contain_text(f"{AMOXICILLINE} : 1 délivré(s), reste 0")
    expect(recorded.last).to_contain_text(f"{PARACETAMOL} : 1 délivré(s), reste 0")
    expect(page.locator("summary", has_text=DISPENSE)).to_have_count(0)
    walk.step("reste-delivre")
    documents_view_open(walk)
    expect(prescription_status(entry)).to_contain_text(FULLY)
    expect(dispense_icon(entry)).to_have_count(0)

    # The copy João printed is no longer the current one.
    certified_copy_verify(walk, joao_copy.verification_url, name="reste-copie-remplacee")
    expect(page.locator(".status", has_text="Copie authentique")).to_be_visible()
    expect(page.locator(".status", has_text="Copie remplacée")).to_be_visible()
    expect(page.get_by_text("Ne l'utilisez plus pour une délivrance.")).to_be_visible()

    # A pharmacist without access to Peppa's record: nothing, whatever the address.
    sophie = register_professional(profession="pharmacist", first_name="Sophie", last_name="Reuter")
    nobody = journey(first=walk.number)
    with nobody.quietly():
        login_with_code(
            nobody,
            matricule=sophie.professional.matricule,
            password=sophie.password,
            code_address=sophie.code_address,
        )
    npage = nobody.page
    for path, name in (
        (viewer_path, None),
        (viewer_path + "dispensation/", "sans-acces-dispensation"),
        (copy_path, None),
    ):
        response = nobody.goto(path)
        assert response is not None and response.status == 404, path
        expect(npage.get_by_role("heading", name="Dossier introuvable")).to_be_visible()
        assert not [v for v in PEPPA_DATA if v in npage.locator("body").inner_text()], path
        if name:
            nobody.step(name)
    response = form_post(
        nobody, viewer_path + "dispensation/", {"kind": "full", "state_version": 0, "accept": "on"}
    )
    assert response.status == 404
    expect(npage.get_by_role("heading", name="Dossier introuvable")).to_be_visible()
    nobody.step("sans-acces-dispensation-post")
    # The copy's public page, as for anyone: no remaining quantities for a pharmacist without access.
    certified_copy_verify(nobody, joao_copy.verification_url, name="sans-acces-verification")
    text = npage.locator("body").inner_text()
    shown = [v for v in (*PEPPA_DATA, AMOXICILLINE, "Reste à délivrer") if v in text]
    assert not shown, f"the verification page shows {shown} to a pharmacist without access"


def test_doctor_with_access_gets_no_dispense_action(
    journey: Callable[..., Journey], cast: dict[str, Professional]
) -> None:
    marc = cast["Marc Weber"]
    walk = journey(first=96)
    page = walk.page
    peppa_documents(
        walk, matricule=marc.matricule, password=marc.password, code_address=marc.email, motif="Consultation"
    )
    entries = medication_prescriptions(walk)
    for index in range(3):
        expect(prescription_status(entries.nth(index))).to_be_visible()
    expect(page.locator(".dispense-icon")).to_have_count(0)
    expect(page.get_by_role("link", name=re.compile(DISPENSE))).to_have_count(0)
    walk.step("medecin-vue-documentaire")

    # RX-3 is never fully dispensed by the other tests: a pharmacist would get the action here.
    prescription_open(walk, entries.nth(RX3))
    status = prescription_status(page.get_by_role("region", name="Lignes de prescription")).inner_text()
    expect(page.get_by_text(DISPENSE)).to_have_count(0)
    expect(page.get_by_role("button", name="Valider")).to_have_count(0)
    walk.step("medecin-prescription")
    viewer_path = page.url.removeprefix(walk.platform.url)

    response = walk.goto(viewer_path + "dispensation/")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="Action réservée aux pharmaciens")).to_be_visible()
    walk.step("medecin-dispensation-refusee")
    response = form_post(
        walk, viewer_path + "dispensation/", {"kind": "full", "state_version": 0, "accept": "on"}
    )
    assert response.status == 403
    expect(
        page.get_by_text("Seul un pharmacien peut marquer une prescription comme dispensée.")
    ).to_be_visible()
    walk.step("medecin-envoi-refuse")

    walk.goto(viewer_path)
    expect(prescription_status(page.get_by_role("region", name="Lignes de prescription"))).to_have_text(
        status
    )


def test_the_grid_is_only_shown_for_a_partial_dispensation(
    journey: Callable[..., Journey], cast: dict[str, Professional]
) -> None:
    claudine = cast["Claudine Kremer"]
    walk = journey(screenshots=False)
    peppa_documents(
        walk,
        matricule=claudine.matricule,
        password=claudine.password,
        code_address=claudine.email,
        motif="Délivrance de médicaments",
    )
    # RX-3 is never fully dispensed by the other tests: its form is always there. Nothing is validated.
    dispense_from_icon(walk, medication_prescriptions(walk).nth(RX3))
    form = dispense_form(walk)
    grid = form.get_by_role("group", name="Grille de dispensation (dispensation partielle)")
    form.get_by_label(PARTIALLY).check()
    expect(grid).to_be_visible()
    form.get_by_label(FULLY).check()
    expect(grid).to_be_hidden(timeout=2_000)
