"""Fixtures of the browser tests: the platform served on a free port, Debian's Chromium, axe-core.

Locally, the tests skip with a message when Chromium or node/npm are missing. ``.ci/run`` sets
``ESANTE_E2E_REQUIRED=1``: there a missing piece fails the run instead of skipping it.
"""

import datetime
import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from esante.patients.matricule import make_patient_matricule

from .axe import Axe, AxeUnavailable, axe_source
from .journey import DESKTOP, Activated, Journey, activate
from .server import Platform, Professional

ROOT = Path(__file__).resolve().parents[2]
# One folder per database, so that CI's SQLite and PostgreSQL runs both keep their screenshots.
_ON_POSTGRESQL = os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))
SHOTS = ROOT / "test-output" / ("e2e-postgresql" if _ON_POSTGRESQL else "e2e")
CHROMIUM = os.environ.get("ESANTE_E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REQUIRED = os.environ.get("ESANTE_E2E_REQUIRED") == "1"


def _unavailable(message: str) -> None:
    if REQUIRED:
        pytest.fail(f"{message} (ESANTE_E2E_REQUIRED=1: the browser tests must run here)", pytrace=False)
    pytest.skip(message)


def context_options(platform: Platform, certificate: Path | None = None) -> dict[str, Any]:
    """A French browser on a 1280×800 screen; with a PKCS#12 file, it presents that client
    certificate to the certificate origin (whose server certificate the demo's local CA signed)."""
    options: dict[str, Any] = {"viewport": DESKTOP, "locale": "fr-FR", "timezone_id": "Europe/Luxembourg"}
    if certificate is not None:
        options["client_certificates"] = [
            {
                "origin": platform.certificate_url,
                "pfxPath": str(certificate),
                "passphrase": platform.p12_password,
            }
        ]
        options["ignore_https_errors"] = True
    return options


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"browser tests need Chromium at {CHROMIUM}: apt-get install -y chromium")
    return CHROMIUM


@pytest.fixture(scope="session")
def axe(chromium_path: str) -> Axe:
    try:
        return Axe(axe_source())
    except AxeUnavailable as exc:
        _unavailable(f"browser tests need axe-core: {exc}")
        raise


@pytest.fixture(scope="session")
def shots_dir(chromium_path: str) -> Path:
    """test-output/e2e/, emptied once per run so that it holds this run's screenshots only."""
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    return SHOTS


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory, shots_dir: Path, axe: Axe) -> Iterator[Platform]:
    """The platform with the demo data set in a fresh data dir, served on a free port: on SQLite,
    or on a fresh PostgreSQL database when ``DATABASE_URL`` names PostgreSQL."""
    served = Platform(
        tmp_path_factory.mktemp("e2e-data"),
        log_path=shots_dir / "server.log",
        database_url=os.environ.get("DATABASE_URL"),
    )
    try:
        served.prepare()
        served.start()
        yield served
    finally:
        served.stop()
        served.database.drop()


# Playwright's synchronous API keeps an event loop running in the main thread while it is
# started, and Django refuses ORM calls from a thread with a running loop: the browser lives
# for the tests of this package only, so the suite's database tests that come after still run.
@pytest.fixture(scope="package")
def playwright_instance(chromium_path: str) -> Iterator[Playwright]:
    with sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="package")
def browser(playwright_instance: Playwright, chromium_path: str) -> Iterator[Browser]:
    launched = playwright_instance.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def journey(
    browser: Browser, platform: Platform, axe: Axe, shots_dir: Path
) -> Iterator[Callable[..., Journey]]:
    """Opens a new browser (own cookies) at 1280×800 in French: ``journey(first=NN)``; with
    ``certificate=<PKCS#12 file>`` it presents that certificate to the certificate origin."""
    contexts = []

    def open_journey(*, first: int = 1, screenshots: bool = True, certificate: Path | None = None) -> Journey:
        context = browser.new_context(**context_options(platform, certificate))
        context.set_default_timeout(15_000)
        contexts.append(context)
        return Journey(
            context.new_page(),
            platform=platform,
            axe=axe,
            shots=shots_dir if screenshots else None,
            first=first,
            has_certificate=certificate is not None,
        )

    yield open_journey
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def cast(platform: Platform) -> dict[str, Professional]:
    """The demo's professionals, by name: three active ones and Léa Hoffmann, still to activate."""
    return platform.professionals


@pytest.fixture(scope="package")
def register_professional(platform: Platform, browser: Browser) -> Callable[..., Activated]:
    """Registers a new professional (``esante add_professional``) and activates the account
    through the portal: someone who has never opened any record. The activation walks in the
    journey that ``walk_with(professional)`` opens, else in a browser of its own, without
    screenshots or checks."""
    serials = itertools.count(500)

    def register(
        *,
        profession: str,
        first_name: str,
        last_name: str,
        walk_with: Callable[[Professional], Journey] | None = None,
    ) -> Activated:
        serial = next(serials)
        professional = Professional(
            name=f"{first_name} {last_name}",
            matricule=make_patient_matricule(datetime.date(1985, 3, 15), serial),
            email=f"{first_name}.{last_name}.{serial}@e2e-demo.lu".lower(),
        )
        platform.command(
            "add_professional",
            "--matricule", professional.matricule,
            "--profession", profession,
            "--last-name", last_name,
            "--first-name", first_name,
            "--email", professional.email,
            "--mobile", f"+352691000{serial}",
        )  # fmt: skip
        code = platform.issue_activation(professional.matricule)
        arguments: dict[str, Any] = {
            "professional": professional,
            "code": code,
            "password": f"Prise-en-charge-{serial}-2026",
            "channel": "E-mail",
            "address": professional.email,
        }
        if walk_with is not None:
            return activate(walk_with(professional), **arguments)
        context = browser.new_context(**context_options(platform))
        try:
            return activate(Journey(context.new_page(), platform=platform, axe=None, shots=None), **arguments)
        finally:
            context.close()

    return register


@pytest.fixture(scope="package")
def outsider(register_professional: Callable[..., Activated]) -> Activated:
    """An active nurse who never declares a therapeutic link with anyone: sees no patient's data."""
    return register_professional(profession="nurse", first_name="Anne", last_name="Schiltz")
