"""A patient's LuxTrust product or eID card: bound from a password and code session through the
certificate origin, then a login by itself; refused when unknown, revoked, or bound elsewhere."""

from typing import Any

import pytest
from django.test import Client

from esante.audit.models import AuditEvent
from esante.espace.models import PatientAccount, PatientCertificate
from tests.access.factories import make_patient
from tests.accounts.conftest import ORIGIN, Pki, at_origin

from .conftest import active_account, events_after, last_sequence, logged_in_patient

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _origin(settings: Any) -> None:
    settings.ESANTE_CERTIFICATE_ORIGIN = ORIGIN
    settings.ESANTE_LOCAL_CA = ""


def _present(browser: Client, start_url: str, cert: Any) -> Any:
    response = browser.post(start_url)
    assert response.status_code == 302
    assert response["Location"].startswith(f"{ORIGIN}/professionnel/certificat/tls/?demande=")
    back = at_origin(response["Location"][len(ORIGIN) :], cert)
    assert back["Location"].startswith("http://testserver/patient/certificat/retour/?jeton=")
    return browser.get(back["Location"])


def test_a_bound_certificate_logs_the_patient_in(pki: Pki) -> None:
    account = active_account()
    cert = pki.issue(surname="Pig", given_name="Peppa")
    start = last_sequence()
    response = _present(logged_in_patient(account), "/patient/choix/certificat/", cert)
    assert response["Location"] == "/patient/choix/"
    assert PatientCertificate.objects.get().account_id == account.pk
    assert ("espace.certificate.bind", "success") in events_after(start)
    browser = Client()
    start = last_sequence()
    response = _present(browser, "/patient/connexion/certificat/", cert)
    assert response["Location"] == "/patient/dossier/"
    assert browser.get("/patient/dossier/").status_code == 200
    login = AuditEvent.objects.get(sequence__gt=start, action="accounts.login.certificate")
    assert (login.outcome, login.actor_id) == ("success", account.user_id)


def test_an_unbound_certificate_is_refused_and_traced(pki: Pki) -> None:
    active_account()
    browser = Client()
    start = last_sequence()
    response = _present(browser, "/patient/connexion/certificat/", pki.issue())
    assert response["Location"] == "/patient/connexion/"
    assert ("accounts.login.certificate", "refused") in events_after(start)
    assert browser.get("/patient/dossier/")["Location"].startswith("/patient/connexion/")


def test_a_revoked_certificate_no_longer_logs_in(pki: Pki) -> None:
    account = active_account()
    cert = pki.issue()
    _present(logged_in_patient(account), "/patient/choix/certificat/", cert)
    pki.revoke(cert)
    browser = Client()
    start = last_sequence()
    _present(browser, "/patient/connexion/certificat/", cert)
    assert ("accounts.login.certificate", "failure") in events_after(start)
    assert browser.get("/patient/dossier/").status_code == 302


def test_a_certificate_bound_to_one_patient_cannot_be_bound_to_another(pki: Pki) -> None:
    first = active_account()
    second = active_account(make_patient(birth_name="Wolf"), email="w@example.lu")
    cert = pki.issue()
    _present(logged_in_patient(first), "/patient/choix/certificat/", cert)
    start = last_sequence()
    response = _present(logged_in_patient(second), "/patient/choix/certificat/", cert)
    assert response["Location"] == "/patient/choix/"
    assert list(PatientCertificate.objects.values_list("account_id", flat=True)) == [first.pk]
    assert events_after(start)[-1] == ("espace.certificate.bind", "refused")


def test_a_suspended_account_cannot_log_in_with_its_certificate(pki: Pki) -> None:
    account = active_account()
    cert = pki.issue()
    _present(logged_in_patient(account), "/patient/choix/certificat/", cert)
    PatientAccount.objects.filter(pk=account.pk).update(state=PatientAccount.State.SUSPENDED)
    browser = Client()
    _present(browser, "/patient/connexion/certificat/", cert)
    assert browser.get("/patient/dossier/").status_code in (302, 403)
    assert AuditEvent.objects.filter(action="accounts.login.certificate", outcome="refused").exists()


# --- activation by certificate, without a letter ------------------------------------------------


def _activate_with(browser: Client, cert: Any) -> Any:
    response = browser.post("/patient/activation/certificat/", {"certificat-accept": "on"})
    assert response.status_code == 302
    assert response["Location"].startswith(f"{ORIGIN}/professionnel/certificat/tls/?demande=")
    back = at_origin(response["Location"][len(ORIGIN) :], cert)
    return browser.get(back["Location"])


def _finish(browser: Client) -> None:
    from django.core import mail

    from .conftest import PASSWORD, last_code

    response = browser.post(
        "/patient/activation/securisation/",
        {"password1": PASSWORD, "password2": PASSWORD, "channel": "email", "address": "peppa@example.lu"},
    )
    assert response["Location"] == "/patient/activation/code/"
    assert mail.outbox[-1].to == ["peppa@example.lu"]
    response = browser.post("/patient/activation/code/", {"code": last_code()})
    assert response["Location"] == "/patient/connexion/"


def test_an_eid_card_naming_a_registered_patient_activates_without_a_letter(pki: Pki) -> None:
    patient = make_patient(birth_name="Pig", first_names="Peppa")
    cert = pki.issue(surname="PIG", given_name="Peppa", serial_attr=f"PNOLU-{patient.matricule}")
    browser = Client()
    page = browser.get("/patient/activation/").content.decode()
    assert "Sans courrier : carte eID ou produit LuxTrust" in page
    start = last_sequence()
    response = _activate_with(browser, cert)
    assert response["Location"] == "/patient/activation/securisation/"
    step1 = AuditEvent.objects.get(sequence__gt=start, action="espace.activation.certificate")
    assert (step1.outcome, step1.patient_id) == ("success", patient.pk)
    # Registered, not active, and no certificate bound before the last step.
    account = PatientAccount.objects.get(patient=patient)
    assert account.state == PatientAccount.State.REGISTERED
    assert not PatientCertificate.objects.exists()
    _finish(browser)
    account.refresh_from_db()
    assert account.state == PatientAccount.State.ACTIVE
    assert PatientCertificate.objects.get().account_id == account.pk
    complete = AuditEvent.objects.get(sequence__gt=start, action="espace.activation.complete")
    assert complete.outcome == "success" and complete.details["factor"] == "certificate"
    # The certificate then logs in by itself.
    browser = Client()
    response = _present(browser, "/patient/connexion/certificat/", cert)
    assert response["Location"] == "/patient/dossier/"


def test_the_terms_must_be_accepted_before_the_certificate_is_asked_for(pki: Pki) -> None:
    make_patient()
    browser = Client()
    start = last_sequence()
    response = browser.post("/patient/activation/certificat/", {})
    assert response.status_code == 200
    assert "Vous devez accepter les Conditions Générales" in response.content.decode()
    assert events_after(start) == []


@pytest.mark.parametrize(
    ("serial", "surname", "reason"),
    [
        (None, "Pig", "holder_unknown"),  # no national identifier
        ("PNOLU-1900010100000", "Pig", "holder_unknown"),  # nobody registered under it
        ("own", "Wolf", "holder_unknown"),  # the patient's matricule, another person's names
    ],
)
def test_a_certificate_that_names_no_registered_patient_activates_nothing(
    pki: Pki, serial: str | None, surname: str, reason: str
) -> None:
    patient = make_patient(birth_name="Pig", first_names="Peppa")
    serial_attr = f"PNOLU-{patient.matricule}" if serial == "own" else serial
    cert = pki.issue(surname=surname, given_name="Peppa", serial_attr=serial_attr)
    browser = Client()
    start = last_sequence()
    response = _activate_with(browser, cert)
    assert response["Location"] == "/patient/activation/"
    page = browser.get(response["Location"]).content.decode()
    assert "Ce certificat ne permet pas de vous identifier dans le registre national" in page
    assert not PatientAccount.objects.exists() and not PatientCertificate.objects.exists()
    refusal = AuditEvent.objects.get(sequence__gt=start, action="espace.activation.certificate")
    assert refusal.outcome == "refused" and refusal.details["reason"] == reason
    # The patient sees in their journal that their matricule was presented under other names.
    assert refusal.patient_id == (patient.pk if serial == "own" else None)


def test_an_already_active_account_or_a_revoked_certificate_is_refused(pki: Pki) -> None:
    account = active_account(make_patient(birth_name="Pig", first_names="Peppa"))
    cert = pki.issue(surname="Pig", given_name="Peppa", serial_attr=f"PNOLU-{account.patient.matricule}")
    browser = Client()
    start = last_sequence()
    assert _activate_with(browser, cert)["Location"] == "/patient/activation/"
    assert "déjà activé" in browser.get("/patient/activation/").content.decode()
    refusal = AuditEvent.objects.get(sequence__gt=start, action="espace.activation.certificate")
    assert (refusal.outcome, refusal.details["reason"]) == ("refused", "already_active")
    other = make_patient(birth_name="Wolf", first_names="Zoé")
    revoked = pki.issue(surname="Wolf", given_name="Zoé", serial_attr=f"PNOLU-{other.matricule}")
    pki.revoke(revoked)
    start = last_sequence()
    assert _activate_with(Client(), revoked)["Location"] == "/patient/activation/"
    # Refused by the certificate origin itself (revocation is checked there first), traced once.
    assert events_after(start) == [("accounts.login.certificate", "failure")]
    assert not PatientAccount.objects.filter(patient=other).exists()


def test_a_certificate_revoked_between_the_first_and_last_step_activates_nothing(pki: Pki) -> None:
    patient = make_patient(birth_name="Pig", first_names="Peppa")
    cert = pki.issue(surname="Pig", given_name="Peppa", serial_attr=f"PNOLU-{patient.matricule}")
    browser = Client()
    assert _activate_with(browser, cert)["Location"] == "/patient/activation/securisation/"
    pki.revoke(cert)
    start = last_sequence()
    from django.core import mail  # noqa: F401 - the outbox is read by _finish's helpers

    from .conftest import PASSWORD, last_code

    browser.post(
        "/patient/activation/securisation/",
        {"password1": PASSWORD, "password2": PASSWORD, "channel": "email", "address": "peppa@example.lu"},
    )
    response = browser.post("/patient/activation/code/", {"code": last_code()})
    assert response.status_code == 200
    assert PatientAccount.objects.get(patient=patient).state == PatientAccount.State.REGISTERED
    assert not PatientCertificate.objects.exists()
    complete = AuditEvent.objects.get(sequence__gt=start, action="espace.activation.complete")
    assert complete.outcome == "refused" and complete.details["reason"].startswith("certificate_")
