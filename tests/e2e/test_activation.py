"""Guide pp.3-11: a registered professional activates the account in five steps, then logs in."""

from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from .journey import Journey, activate, login_with_code
from .server import Platform, Professional

pytestmark = pytest.mark.e2e


def test_registered_professional_activates_the_account_and_logs_in(
    journey: Callable[..., Journey], platform: Platform, cast: dict[str, Professional]
) -> None:
    lea = cast["Léa Hoffmann"]
    # Step 1 the demo's way, without a certificate: binding one is test_certificate's subject.
    walk = journey(first=1)

    activated = activate(
        walk,
        professional=lea,
        code=platform.issue_activation(lea.matricule),
        password="Ordonnance-du-Globe-2026",
        channel="Mobile",
    )

    login_with_code(
        walk, matricule=lea.matricule, password=activated.password, code_address=activated.code_address
    )
    expect(walk.page.get_by_role("heading", name="eDocuments", exact=True)).to_be_visible()
    walk.step("activee-mes-patients")
