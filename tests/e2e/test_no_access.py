"""A professional without access sees nothing: the record's and the document's addresses answer
"Dossier introuvable", exactly as for a record that does not exist, and no patient data."""

from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from .journey import (
    Activated,
    Journey,
    login_with_code,
    medication_prescriptions,
    patient_open,
    patient_search,
    prescription_open,
)
from .server import Professional

pytestmark = pytest.mark.e2e

PEPPA = "1904112000166"
PEPPA_DATA = ("PIG", "Peppa", PEPPA, "20/11/1904", "1664927202", "1700000151")


def _addresses_of_a_prescription(walk: Journey, claudine: Professional) -> tuple[str, str]:
    """The record's and a prescription's addresses, as a pharmacist with access knows them."""
    page = walk.page
    with walk.quietly():
        login_with_code(
            walk, matricule=claudine.matricule, password=claudine.password, code_address=claudine.email
        )
        patient_search(walk, matricule=PEPPA)
        patient_open(walk, name="PIG")
        record_url = page.url
        page.get_by_role("link", name="Vue documentaire").click()
        prescription_open(walk, medication_prescriptions(walk).first)
    return record_url, page.url


def test_professional_without_access_sees_nothing(
    journey: Callable[..., Journey], cast: dict[str, Professional], outsider: Activated
) -> None:
    record_url, document_url = _addresses_of_a_prescription(journey(), cast["Claudine Kremer"])
    walk = journey(first=40)
    page = walk.page
    with walk.quietly():
        login_with_code(
            walk,
            matricule=outsider.professional.matricule,
            password=outsider.password,
            code_address=outsider.code_address,
        )
    expect(page.get_by_text("Vous n'avez d'accès en cours à aucun dossier.")).to_be_visible()
    walk.step("sans-acces-mes-patients")

    for url, name in ((record_url, "sans-acces-dossier"), (document_url, "sans-acces-document")):
        response = page.goto(url)
        assert response is not None and response.status == 404, url
        expect(page.get_by_role("heading", name="Dossier introuvable")).to_be_visible()
        walk.step(name)
        text = page.locator("body").inner_text()
        leaked = [value for value in PEPPA_DATA if value in text]
        assert not leaked, f"{url} shows patient data to a professional without access: {leaked}"
        assert "Prescription" not in text and "eServices" not in text

    response = page.goto(document_url + "contenu")
    assert response is not None and response.status == 404
    assert "Peppa" not in response.text()
