"""Every view that takes a row lock (``select_for_update``), exercised through the served platform.

In production a view runs in autocommit and each service opens its own transaction; PostgreSQL
refuses a row lock outside one (issue 10: the one-time-code page answered 500). Here the platform
is the real one (``server.py``: gunicorn, real per-request transactions, SQLite or a fresh
PostgreSQL database when ``DATABASE_URL`` names one), so each path below either works as the user
expects or shows a server error, which every test of this module refuses.

Each view (or operators' admin action) that takes a row lock, the rows it locks (service) and
the test that goes through it. T1-T7 are this module's tests, in order: T1 wrong password,
wrong code, new code; T2 activation with a wrong code, a step back, a wrong one-time code;
T3 forgotten password; T4 withdrawal; T5 suspend, reactivate, unlock, letter; T6 revoke a
grant; T7 change a patient, set and lift a block.

Every audited request also locks the audit chain head (``audit.services.audit_record``): each
of the pages below, and logout (``accounts:logout``, T3).

Portal, ``accounts``:

- ``login``, right password: account throttle row (``throttling.account_lock_check``), the
  (account, address) row (``pair_delay_check``), code device row (``otp.login_device_for``)
  → test_login, every test that logs in.
- ``login``, wrong password: the same rows counting the failure (``account_failure``,
  ``pair_failure``) and the address row (``address_failure``) → T1.
- ``login_code``, right code: account, pair and device rows → test_login; wrong code: the same,
  counting the failure → T1; « Recevoir un nouveau code » (``login_code_resend``: device row),
  refused while the first code is fresh, then sent → T1.
- ``activation_step`` 1-4 (``activation.wizard.wizard_locked``: wizard row) → test_activation; step 4's
  completion (professional, letter, user rows) → test_activation; step 2 with a wrong code
  (letter row, activation pair and address rows) → T2; « Etape précédente » (``wizard_back``)
  → T2; step 4 with a wrong one-time code → T2.
- ``login_certificate``, ``certificate_origin``, ``certificate_return`` (``presentation``:
  presentation row; at step 1, the wizard row) → test_certificate, T3.
- ``password_change`` (account row, user row), after a certificate login → T3; refused in a
  password + code session (account row, failure counter) → T3.

Not walked here: the refusals once a pair is delayed (from the third failure) or an account
locked (100 failures). They take the same rows in the same order as the first failure above and
are tested in ``tests/accounts`` and ``tests/security``; one wrong try per test keeps these
walks clear of the delays.

Portal, ``access``, ``dispensing``:

- ``access:search`` (professional row, ``_search_counted``) → test_record, test_no_access.
- ``access:dialog`` (patient row, ``_grant_in_transaction``) → test_record, test_dispensing.
- ``dispensing:dispense`` (prescription row; after the commit, in the job queue's consumer,
  ``certified_copy_issue``: the prescription row again) → test_dispensing, T4; refused under the
  lock (a stale form) → T4.
- ``dispensing:withdraw`` (prescription and dispensation rows, ``_withdraw_in_transaction``) → T4;
  refused under the locks (already withdrawn) → T4.

Operators' admin (``/operateurs/``):

- professionals, « Suspendre » / « Réactiver » (professional row, ``professional_set_state``),
  « Lever le blocage de connexion » (``login_unlock``: no row lock but the audit head),
  « Émettre un nouveau courrier d'activation » (professional row, ``activation_letter_issue``) → T5.
- grants, « Révoquer » (grant row, ``access_grant_revoke``) → T6.
- patients, change page saved (patient row, ``patient_save_by_operator``) → T7.
- blocks, add (``patient_block_create``: audit only), « Lever » (block row,
  ``patient_block_lift``) → T7.

The admin (``/operateurs/``) needs a session verified by the platform's password + one-time-code
login: the operator is a registered professional whose user is made staff and superuser.
"""

import datetime
import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, Response, expect

from esante.accounts.local_pki import LocalPki
from esante.patients.matricule import make_patient_matricule

from .journey import (
    Activated,
    Journey,
    activation_certificate_step,
    activation_code_step,
    activation_confirmation_step,
    activation_information_step,
    activation_open,
    admin_action,
    dispense_mark,
    documents_view_open,
    form_post,
    login_with_code,
    medication_prescriptions,
    patient_open,
    patient_search,
    prescription_open,
    prescription_status,
)
from .server import Platform, Professional

pytestmark = pytest.mark.e2e

PEPPA = "1904112000166"
PROFESSIONALS = "/operateurs/accounts/professional/"
GRANTS = "/operateurs/access/accessgrant/"
BLOCKS = "/operateurs/access/patientblock/"
PATIENTS = "/operateurs/patients/patient/"
RESEND_SECONDS = 10  # ESANTE_OTP_RESEND_SECONDS of the served platform (server.py)


# --- helpers of this module -------------------------------------------------------------------


class ServerErrors:
    """The 5xx answers a page received (documents, redirects, forms), to refuse at the end."""

    def __init__(self, page: Page) -> None:
        self.seen: list[str] = []
        page.on("response", self._answer)

    def _answer(self, response: Response) -> None:
        if response.status >= 500:
            self.seen.append(f"{response.status} {response.request.method} {response.url}")


def no_server_error(walk: Journey, errors: ServerErrors) -> None:
    assert not errors.seen, f"server errors: {errors.seen}\n{walk.platform.log_tail()}"
    expect(walk.page.get_by_text("Server Error")).to_have_count(0)


@pytest.fixture
def watched(journey: Callable[..., Journey]) -> Iterator[Callable[..., Journey]]:
    """``journey`` whose pages must never get a server error (checked when the test ends)."""
    opened: list[tuple[Journey, ServerErrors]] = []

    def open_watched(**options: object) -> Journey:
        walk = journey(**options)
        opened.append((walk, ServerErrors(walk.page)))
        return walk

    yield open_watched
    for walk, errors in opened:
        no_server_error(walk, errors)


def python(platform: Platform, code: str) -> str:
    """Runs Python in the platform's own ``esante shell`` (its database); returns the last line."""
    return platform.command("shell", "-c", code).strip().splitlines()[-1]


@dataclass(frozen=True)
class DemoPatient:
    pk: int
    matricule: str
    name: str  # as the search results show it (the link to the record)


def demo_patient(platform: Platform, *, with_open_prescription: bool = False, offset: int = 0) -> DemoPatient:
    """A synthetic demo patient no other browser test touches (never Peppa): the first one with a
    prescription not yet dispensed, or the ``offset``-th one (by id) without any prescription."""
    query = (
        "Patient.objects.exclude(matricule='%s').filter(documents__prescription__dispensation_state='open')"
        if with_open_prescription
        else "Patient.objects.exclude(matricule='%s').exclude(documents__prescription__isnull=False)"
    ) % PEPPA
    line = python(
        platform,
        "import json; from esante.patients.models import Patient; "
        f"p = {query}.distinct().order_by('pk')[{offset}]; "
        "print(json.dumps([p.pk, p.matricule, (p.usage_name or p.birth_name).upper()]))",
    )
    pk, matricule, name = json.loads(line)
    return DemoPatient(pk=pk, matricule=matricule, name=name)


def professional_pk(platform: Platform, matricule: str) -> int:
    return int(
        python(
            platform,
            "from esante.accounts.models import Professional; "
            f"print(Professional.objects.get(matricule='{matricule}').pk)",
        )
    )


_serials = itertools.count(700)


def register_without_activation(
    platform: Platform, *, profession: str, first_name: str, last_name: str
) -> Professional:
    """``esante add_professional`` then ``esante issue_activation``: a professional holding an
    activation letter, the account still to activate."""
    serial = next(_serials)
    matricule = make_patient_matricule(datetime.date(1979, 6, 2), serial)
    email = f"{first_name}.{last_name}.{serial}@e2e-demo.lu".lower()
    platform.command(
        "add_professional",
        "--matricule", matricule,
        "--profession", profession,
        "--last-name", last_name,
        "--first-name", first_name,
        "--email", email,
        "--mobile", f"+352691700{serial}",
    )  # fmt: skip
    return Professional(
        name=f"{first_name} {last_name}",
        matricule=matricule,
        email=email,
        activation_code=platform.issue_activation(matricule),
    )


def another_code(code: str, alphabet: str) -> str:
    """``code`` with its last character changed: a wrong code of the right shape."""
    last = code[-1]
    return code[:-1] + next(ch for ch in alphabet if ch != last)


def log_in(walk: Journey, who: Activated) -> None:
    with walk.quietly():
        login_with_code(
            walk, matricule=who.professional.matricule, password=who.password, code_address=who.code_address
        )


@pytest.fixture(scope="module")
def operator(platform: Platform, register_professional: Callable[..., Activated]) -> Activated:
    """An agency operator: a registered professional whose user is staff and superuser."""
    activated = register_professional(profession="nurse", first_name="Sandra", last_name="Operatrice")
    python(
        platform,
        "from esante.accounts.models import User; "
        f"print(User.objects.filter(username='{activated.professional.matricule}')"
        ".update(is_staff=True, is_superuser=True))",
    )
    return activated


def operator_session(watched: Callable[..., Journey], operator: Activated, *, first: int) -> Journey:
    """The operator logged in (password + code), on the admin's index."""
    walk = watched(first=first)
    log_in(walk, operator)
    walk.goto("/operateurs/")
    expect(walk.page.get_by_role("heading", name=re.compile(r"^Site d.administration$"))).to_be_visible()
    return walk


# --- login: a wrong password, a wrong one-time code, a new code -----------------------------


def test_wrong_password_then_the_right_one_a_wrong_code_then_a_new_code(
    watched: Callable[..., Journey], register_professional: Callable[..., Activated]
) -> None:
    nurse = register_professional(profession="nurse", first_name="Claire", last_name="Wagner")
    walk = watched(first=110)
    page = walk.page
    outbox = walk.platform.outbox
    walk.goto("/professionnel/connexion/")
    # One wrong password only: a few more would start delaying this address's tries.
    page.get_by_label("Matricule *").fill(nurse.professional.matricule)
    page.get_by_label("Mot de passe *").fill(nurse.password + "-faux")
    page.get_by_role("button", name="Valider").click()
    expect(page.get_by_text("Matricule ou mot de passe incorrect.")).to_be_visible()
    expect(page.get_by_role("heading", name="Matricule, mot de passe et code")).to_be_visible()
    walk.step("verrous-mot-de-passe-faux")

    page.get_by_label("Matricule *").fill(nurse.professional.matricule)
    page.get_by_label("Mot de passe *").fill(nurse.password)
    before = outbox.mark()
    page.get_by_role("button", name="Valider").click()
    code_field = page.get_by_label("Code reçu par SMS ou par E-mail *")
    expect(code_field).to_be_visible()
    first_code = outbox.code_for(nurse.code_address, since=before)
    code_field.fill(another_code(first_code, "0123456789"))
    page.get_by_role("button", name="Valider").click()
    expect(page.get_by_text("Le code saisi est incorrect.")).to_be_visible()
    walk.step("verrous-code-faux")

    # « Recevoir un nouveau code »: refused while the first code is fresh (it says when), then sent.
    before = outbox.mark()
    resend = page.get_by_role("button", name="Recevoir un nouveau code")
    resend.click()
    status = page.get_by_role("status")
    expect(status).to_contain_text(
        re.compile(r"Un nouveau code (pourra être envoyé à \d\d:\d\d:\d\d|vous a été envoyé)")
    )
    if "pourra être envoyé" in status.inner_text():
        walk.step("verrous-nouveau-code-trop-tot")
        page.wait_for_timeout((RESEND_SECONDS + 1) * 1000)
        resend.click()
    expect(page.get_by_role("status")).to_contain_text("Un nouveau code vous a été envoyé.")
    walk.step("verrous-nouveau-code-envoye")
    code_field.fill(outbox.code_for(nurse.code_address, since=before))
    page.get_by_role("button", name="Valider").click()
    expect(page).to_have_url(re.compile(r"/edocuments/$"))
    expect(page.get_by_role("heading", name="eDocuments", exact=True)).to_be_visible()


# --- activation: a wrong code, « Etape précédente », a wrong one-time code ------------------


def test_activation_with_a_wrong_code_a_step_back_and_a_wrong_one_time_code(
    watched: Callable[..., Journey], platform: Platform
) -> None:
    midwife = register_without_activation(
        platform, profession="midwife", first_name="Nora", last_name="Klein"
    )
    walk = watched(first=115)
    page = walk.page
    with walk.quietly():
        activation_open(walk)
        activation_certificate_step(walk)

    # Etape 2 with a wrong code: refused on the page, the wizard stays at step 2.
    page.get_by_label("Matricule *").fill(midwife.matricule)
    page.get_by_label("Code d'activation *").fill(another_code(midwife.activation_code, "ACDEFGHJ"))
    page.get_by_role("button", name="Etape suivante").click()
    expect(page.get_by_text("Le matricule ou le code d'activation est incorrect.")).to_be_visible()
    expect(page.get_by_role("heading", name="Code d'activation")).to_be_visible()
    walk.step("verrous-activation-code-faux")
    with walk.quietly():
        activation_code_step(walk, matricule=midwife.matricule, code=midwife.activation_code)

    # Etape 3, « Etape précédente »: back at step 2, where the code is asked again.
    expect(page.get_by_role("heading", name="Informations personnelles")).to_be_visible()
    page.get_by_role("button", name="Etape précédente").click()
    expect(page.get_by_role("heading", name="Code d'activation")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/activation/etape/2/$"))
    with walk.quietly():
        activation_code_step(walk, matricule=midwife.matricule, code=midwife.activation_code)
        activation_information_step(walk, professional=midwife)

    # Etape 4 with a wrong one-time code, then the right one.
    expect(page.get_by_role("heading", name="Sécurisation de votre compte")).to_be_visible()
    page.get_by_label("Mot de passe *", exact=True).fill("Sage-femme-du-Limpertsberg-2026")
    page.get_by_label("Confirmation du mot de passe *").fill("Sage-femme-du-Limpertsberg-2026")
    page.get_by_label("E-mail", exact=True).check()
    page.get_by_label("Mobile * / E-mail *").fill(midwife.email)
    before = platform.outbox.mark()
    page.get_by_role("button", name="Valider").click()
    code_field = page.get_by_label("Code reçu par SMS ou par E-mail *")
    expect(code_field).to_be_visible()
    code = platform.outbox.code_for(midwife.email, since=before)
    validate = page.locator("form", has=code_field).get_by_role("button", name="Valider")
    code_field.fill(another_code(code, "0123456789"))
    validate.click()
    expect(page.get_by_text("Le code saisi est incorrect.")).to_be_visible()
    walk.step("verrous-activation-code-unique-faux")
    code_field.fill(code)
    validate.click()
    activation_confirmation_step(walk)


# --- « Mot de passe oublié » with the certificate ---------------------------------------------


def test_forgotten_password_replaced_after_a_certificate_login_refused_after_a_password_login(
    watched: Callable[..., Journey], platform: Platform, register_professional: Callable[..., Activated]
) -> None:
    walks: list[Journey] = []

    def with_a_certificate(professional: Professional) -> Journey:
        p12, _ = LocalPki(platform.data_dir / "certificats").professional_p12(
            matricule=professional.matricule, last_name="Thill", first_name="Luc"
        )
        walks.append(watched(screenshots=False, certificate=p12))
        return walks[-1]

    luc = register_professional(
        profession="physiotherapist", first_name="Luc", last_name="Thill", walk_with=with_a_certificate
    )
    walk = walks[-1]
    page = walk.page
    page.get_by_role("link", name="Mot de passe oublié ?").click()
    expect(page.get_by_role("heading", name="Mot de passe oublié ?")).to_be_visible()
    walk.step("mot-de-passe-oublie")  # this walk keeps no screenshots: the check only
    luxtrust = page.locator("section", has=page.get_by_role("heading", name=re.compile("AVEZ UN PRODUIT")))
    luxtrust.get_by_role("button", name="Connexion", exact=True).click()
    expect(page).to_have_url(re.compile(r"/professionnel/mot-de-passe/$"))
    expect(page.get_by_role("heading", name="Nouveau mot de passe")).to_be_visible()
    walk.step("nouveau-mot-de-passe")
    new_password = "Kine-de-Bonnevoie-2026"
    page.get_by_label("Nouveau mot de passe *").fill(new_password)
    page.get_by_label("Confirmation du mot de passe *").fill(new_password)
    page.get_by_role("button", name="Valider").click()
    expect(page.get_by_role("status")).to_contain_text("Votre mot de passe a été modifié.")
    expect(page.get_by_role("heading", name="eDocuments", exact=True)).to_be_visible()

    # The portal has no logout button (yet): the logout form, as it would post.
    response = form_post(walk, "/professionnel/deconnexion/", {})
    assert response.status == 200
    expect(page.get_by_role("status")).to_contain_text("Vous êtes déconnecté.")
    walk.goto("/edocuments/")
    expect(page).to_have_url(re.compile(r"/professionnel/connexion/"))

    # The new password logs in; a password + code session may not choose a password (403, traced).
    later = watched(first=120)
    log_in(
        later, Activated(professional=luc.professional, password=new_password, code_address=luc.code_address)
    )
    response = later.goto("/professionnel/mot-de-passe/")
    assert response is not None and response.status == 403
    refused = form_post(later, "/professionnel/mot-de-passe/", {"password1": "x", "password2": "x"})
    assert refused.status == 403
    expect(later.page.get_by_role("alert")).to_contain_text("connectez-vous avec votre produit LuxTrust")
    later.step("verrous-mot-de-passe-refuse")


# --- withdrawal of a dispensation ---------------------------------------------------------------


def test_pharmacist_withdraws_her_dispensation_and_the_prescription_is_open_again(
    watched: Callable[..., Journey], platform: Platform, register_professional: Callable[..., Activated]
) -> None:
    patient = demo_patient(platform, with_open_prescription=True)
    pharmacist = register_professional(profession="pharmacist", first_name="Carole", last_name="Hansen")
    walk = watched(first=125)
    page = walk.page
    with walk.quietly():
        log_in(walk, pharmacist)
        patient_search(walk, matricule=patient.matricule)
        patient_open(walk, name=patient.name)
        documents_view_open(walk)
        entry = medication_prescriptions(walk).first
        expect(prescription_status(entry)).to_contain_text("Non dispensée")
        prescription_open(walk, entry)
        dispense_mark(walk, name="verrous-dispensation")
    panel = page.get_by_role("region", name="Lignes de prescription")
    expect(prescription_status(panel)).to_contain_text("Dispensée entièrement")
    withdraw_path = page.locator("form[action*='/retrait/']").get_attribute("action") or ""
    assert withdraw_path.endswith("/retrait/"), withdraw_path
    viewer_url = page.url

    # The withdrawal page, by the pharmacist who recorded the dispensation: a reason, « Retirer ».
    walk.goto(withdraw_path)
    expect(page.get_by_role("heading", name=re.compile(r"^Retirer la dispensation du "))).to_be_visible()
    page.get_by_label("Motif du retrait").fill("Erreur de patient au comptoir")
    walk.step("verrous-retrait")
    page.get_by_role("button", name="Retirer", exact=True).click()
    expect(page).to_have_url(viewer_url)
    expect(page.get_by_role("status")).to_contain_text(
        "La dispensation a été retirée ; elle reste visible, marquée « retirée »."
    )
    expect(prescription_status(panel)).to_contain_text("Non dispensée")
    recorded = page.get_by_role("heading", name="Dispensations enregistrées").locator(
        "xpath=following-sibling::ul[1]/li"
    )
    expect(recorded).to_have_count(1)
    expect(recorded).to_contain_text("Retirée le")
    expect(recorded).to_contain_text("Erreur de patient au comptoir")
    expect(page.locator("summary", has_text="Marquer comme dispensé")).to_have_count(1)
    walk.step("verrous-retrait-fait")
    documents_view_open(walk)
    expect(prescription_status(medication_prescriptions(walk).first)).to_contain_text("Non dispensée")

    # Both refused under the same locks: the old form (its state version is stale now), and the
    # withdrawal once more.
    page.goto(viewer_url)
    stale = form_post(
        walk, viewer_url + "dispensation/", {"kind": "full", "state_version": 0, "accept": "on"}
    )
    assert stale.status == 409
    expect(page.get_by_role("alert")).to_contain_text("La prescription a été modifiée entre-temps")
    again = form_post(walk, withdraw_path, {"reason": "Encore"})
    assert again.status == 409
    expect(page.get_by_role("alert")).to_contain_text("Cette dispensation a déjà été retirée le")
    response = walk.goto(withdraw_path)
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="Retrait impossible")).to_be_visible()


# --- the operators' admin ---------------------------------------------------------------------


def test_operator_suspends_reactivates_unlocks_and_issues_a_letter(
    watched: Callable[..., Journey],
    platform: Platform,
    operator: Activated,
    register_professional: Callable[..., Activated],
) -> None:
    dentist = register_professional(profession="dentist", first_name="Yves", last_name="Schmit")
    matricule = dentist.professional.matricule
    walk = operator_session(watched, operator, first=130)
    page = walk.page
    row = page.locator("#result_list tbody tr")

    admin_action(
        walk, changelist=PROFESSIONALS, search=matricule, action="Suspendre les comptes sélectionnés"
    ).click()
    expect(row).to_contain_text("Suspendu")
    walk.snapshot("verrous-operateur-suspendu")
    admin_action(
        walk, changelist=PROFESSIONALS, search=matricule, action="Réactiver les comptes sélectionnés"
    ).click()
    expect(row).to_contain_text("Actif")
    admin_action(
        walk, changelist=PROFESSIONALS, search=matricule, action="Lever le blocage de connexion"
    ).click()
    expect(page.locator("ul.messagelist")).to_contain_text("Blocage levé.")
    walk.snapshot("verrous-operateur-blocage-leve")
    run = admin_action(
        walk,
        changelist=PROFESSIONALS,
        search=matricule,
        action="Émettre un nouveau courrier d'activation (PDF)",
    )
    with page.expect_download() as download_info:
        run.click()
    download = download_info.value
    assert download.suggested_filename == f"activation-{matricule}.pdf"
    with open(download.path(), "rb") as letter:
        assert letter.read(5) == b"%PDF-"

    # Reactivated: the dentist logs in again (the new letter changes nothing until it is used).
    again = watched(screenshots=False)
    log_in(again, dentist)
    expect(again.page.get_by_role("heading", name="eDocuments", exact=True)).to_be_visible()


def test_operator_revokes_an_access_grant(
    watched: Callable[..., Journey],
    platform: Platform,
    operator: Activated,
    register_professional: Callable[..., Activated],
) -> None:
    patient = demo_patient(platform, offset=0)
    nurse = register_professional(profession="nurse", first_name="Lise", last_name="Bauer")
    holder = watched(screenshots=False)
    with holder.quietly():
        log_in(holder, nurse)
        patient_search(holder, matricule=patient.matricule)
        patient_open(holder, name=patient.name, motif="Soins à domicile")
    expect(holder.page).to_have_url(re.compile(r"/patient/[0-9a-f-]+/$"))
    record_url = holder.page.url

    walk = operator_session(watched, operator, first=135)
    admin_action(
        walk, changelist=GRANTS, search=nurse.professional.matricule, action="Révoquer les accès sélectionnés"
    ).click()
    expect(walk.page.locator("ul.messagelist")).to_contain_text("1 accès révoqué(s).")
    walk.snapshot("verrous-operateur-acces-revoque")

    # The nurse's access is gone: no patient in « Mes patients », the record's address refused.
    holder.goto("/edocuments/")
    expect(holder.page.get_by_text("Vous n'avez d'accès en cours à aucun dossier.")).to_be_visible()
    response = holder.page.goto(record_url)
    assert response is not None and response.status == 404
    expect(holder.page.get_by_role("heading", name="Dossier introuvable")).to_be_visible()


def test_operator_changes_a_patient_and_sets_then_lifts_a_block(
    watched: Callable[..., Journey], platform: Platform, operator: Activated, cast: dict[str, Professional]
) -> None:
    patient = demo_patient(platform, offset=1)
    marc = cast["Marc Weber"]
    walk = operator_session(watched, operator, first=140)
    page = walk.page

    # A patient's page, changed and saved.
    walk.goto(f"{PATIENTS}{patient.pk}/change/")
    alerts = page.get_by_label("Alertes administratives")
    alerts.fill("Adresse à vérifier (e2e)")
    walk.snapshot("verrous-operateur-patient")
    page.get_by_role("button", name="Enregistrer", exact=True).click()
    expect(page.locator("ul.messagelist")).to_contain_text("a été modifié avec succès")
    walk.goto(f"{PATIENTS}{patient.pk}/change/")
    expect(page.get_by_label("Alertes administratives")).to_have_value("Adresse à vérifier (e2e)")

    # The patient refuses Marc Weber (a block, set on the patient's request), then it is lifted.
    walk.goto(f"{BLOCKS}add/")
    page.locator("input[name=patient]").fill(str(patient.pk))
    page.locator("input[name=professional]").fill(str(professional_pk(platform, marc.matricule)))
    page.locator("[name=reason]").fill("Demande du patient (e2e)")
    page.get_by_role("button", name="Enregistrer", exact=True).click()
    expect(page.locator("ul.messagelist")).to_contain_text("a été ajouté avec succès")
    admin_action(
        walk, changelist=BLOCKS, search=patient.matricule, action="Lever les refus sélectionnés"
    ).click()
    expect(page.locator("ul.messagelist")).to_contain_text("Refus levé(s).")
    walk.snapshot("verrous-operateur-refus-leve")
