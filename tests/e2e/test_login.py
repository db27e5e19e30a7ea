"""Guide pp.10-11: "Matricule, mot de passe et code", the code read from the outbox."""

from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from .journey import Journey, login_with_code
from .server import Professional

pytestmark = pytest.mark.e2e


def test_pharmacist_logs_in_with_matricule_password_and_code(
    journey: Callable[..., Journey], cast: dict[str, Professional]
) -> None:
    claudine = cast["Claudine Kremer"]
    walk = journey(first=20)
    walk.goto("/professionnel/")
    walk.step("espace-professionnel")
    walk.page.get_by_role("link", name="Je suis professionnel").click()

    login_with_code(
        walk, matricule=claudine.matricule, password=claudine.password, code_address=claudine.email
    )

    page = walk.page
    expect(page.get_by_role("heading", name="eDocuments", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Mes patients")).to_have_attribute("aria-current", "page")
    walk.step("mes-patients")
