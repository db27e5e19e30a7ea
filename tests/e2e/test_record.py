"""Guide pp.12-14: "Recherche patient" → PIG Peppa → the access dialog → "Vue documentaire" →
"Prescription (3)" → a prescription in the viewer."""

from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from .journey import (
    Activated,
    Journey,
    access_dialog_accept,
    login_with_code,
    medication_prescriptions,
    patient_search,
    prescription_open,
    record_documents_view,
)

pytestmark = pytest.mark.e2e

PEPPA = "1904112000166"


def test_pharmacist_finds_peppa_declares_the_link_and_opens_a_prescription(
    journey: Callable[..., Journey], register_professional: Callable[..., Activated]
) -> None:
    # A pharmacist who has never opened Peppa's record, whatever the other tests did before.
    pharmacist = register_professional(profession="pharmacist", first_name="Marie", last_name="Faber")
    walk = journey(first=30)
    page = walk.page
    with walk.quietly():
        login_with_code(
            walk,
            matricule=pharmacist.professional.matricule,
            password=pharmacist.password,
            code_address=pharmacist.code_address,
        )

    patient_search(walk, matricule=PEPPA)
    row = page.get_by_role("row", name=PEPPA)
    expect(row).to_contain_text("PIG")
    expect(row).to_contain_text("Peppa")
    expect(row).to_contain_text("20/11/1904")

    page.get_by_role("table").get_by_role("link", name="PIG", exact=True).click()
    access_dialog_accept(walk)
    expect(page.get_by_role("heading", level=1)).to_contain_text("PIG Peppa")
    expect(page.get_by_text(f"Matricule {PEPPA}")).to_be_visible()

    record_documents_view(walk)
    expect(page.get_by_text("Prescription (3)", exact=True)).to_be_visible()
    expect(page.get_by_text("Traitements médicamenteux (3)", exact=True)).to_be_visible()
    entries = medication_prescriptions(walk)
    expect(entries).to_have_count(3)
    for index in range(3):
        expect(entries.nth(index)).to_contain_text("eServices")

    prescription_open(walk, entries.first)
    lines = page.get_by_role("region", name="Lignes de prescription").locator("tbody tr")
    expect(lines.first).to_be_visible()
    walk.step("prescription")
