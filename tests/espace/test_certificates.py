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
