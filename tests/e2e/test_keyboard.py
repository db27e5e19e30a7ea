"""Keyboard only: the login form, the one-time code and the patient search with Tab and Enter."""

from collections.abc import Callable

import pytest
from playwright.sync_api import Locator, expect

from .journey import Journey
from .server import Professional

pytestmark = pytest.mark.e2e

PEPPA = "1904112000166"


def tab_to(walk: Journey, target: Locator, *, limit: int = 40) -> None:
    """Presses Tab until ``target`` has the focus; fails when it never gets it."""
    expect(target).to_be_visible()
    for _ in range(limit):
        walk.page.keyboard.press("Tab")
        if target.evaluate("element => element === document.activeElement"):
            return
    raise AssertionError(f"{target} never received the focus after {limit} presses of Tab")


def test_login_and_patient_search_with_the_keyboard_alone(
    journey: Callable[..., Journey], cast: dict[str, Professional]
) -> None:
    joao = cast["João Da Silva"]
    walk = journey(first=50)
    page = walk.page
    keyboard = page.keyboard

    walk.goto("/professionnel/connexion/")
    tab_to(walk, page.get_by_label("Matricule *"))
    keyboard.type(joao.matricule)
    keyboard.press("Tab")
    expect(page.get_by_label("Mot de passe *")).to_be_focused()
    keyboard.type(joao.password)
    walk.step("clavier-connexion")
    before = walk.platform.outbox.mark()
    keyboard.press("Enter")

    code_field = page.get_by_label("Code reçu par SMS ou par E-mail *")
    tab_to(walk, code_field)
    keyboard.type(walk.platform.outbox.code_for(joao.email, since=before))
    walk.step("clavier-code")
    keyboard.press("Enter")
    expect(page.get_by_role("heading", name="eDocuments", exact=True)).to_be_visible()

    tab_to(walk, page.get_by_role("link", name="Recherche patient"))
    keyboard.press("Enter")
    tab_to(walk, page.get_by_label("Numéro assuré"))
    keyboard.type(PEPPA)
    walk.step("clavier-recherche")
    keyboard.press("Enter")
    expect(page.get_by_text("1 à 1 sur 1 éléments")).to_be_visible()

    tab_to(walk, page.get_by_role("table").get_by_role("link", name="PIG", exact=True))
    walk.step("clavier-resultat")
    keyboard.press("Enter")
    page.wait_for_url("**/patient/**")
    expect(page.get_by_role("heading", level=1)).to_contain_text(
        "Accès au dossier du patient" if page.url.endswith("/acces/") else "PIG Peppa"
    )
