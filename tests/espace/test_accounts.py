"""Patient accounts: the letter, the three-step activation, the login, and the separation of
patient and professional sessions."""

import io
from pathlib import Path

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.test import Client

from esante.accounts.models import LoginThrottle, User
from esante.audit.models import AuditEvent
from esante.espace.models import PatientAccount, PatientLetter
from tests.access.factories import make_grant, make_patient, make_professional

from .conftest import PASSWORD, active_account, events_after, last_code, last_sequence, logged_in_patient

pytestmark = pytest.mark.django_db


def _issue(patient) -> str:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    call_command("issue_patient_activation", "--matricule", patient.matricule, stdout=out)
    return out.getvalue().split("activation code: ")[1].split()[0]


def test_issue_patient_activation_prints_the_code_writes_the_letter_and_traces(tmp_path: Path) -> None:
    patient = make_patient()
    out = io.StringIO()
    pdf = tmp_path / "courrier.pdf"
    call_command("issue_patient_activation", "--matricule", patient.matricule, "--pdf", str(pdf), stdout=out)
    code = out.getvalue().split("activation code: ")[1].split()[0]
    assert len(code) == 19
    assert pdf.read_bytes().startswith(b"%PDF")
    account = PatientAccount.objects.get(patient=patient)
    assert account.state == PatientAccount.State.REGISTERED
    assert not account.user.has_usable_password()
    letter = PatientLetter.objects.get(account=account)
    assert code.replace("-", "") not in letter.code_digest  # only a keyed digest is kept
    event = AuditEvent.objects.get(action="espace.letter.issue")
    assert event.patient_id == patient.pk and code not in event.canonical
    # A new letter revokes the first one.
    _issue(patient)
    letter.refresh_from_db()
    assert letter.revoked_at is not None


def test_issue_patient_activation_refuses_an_unknown_matricule() -> None:
    with pytest.raises(CommandError, match="aucun patient"):
        call_command("issue_patient_activation", "--matricule", "1900010100000")
    assert not PatientAccount.objects.exists()


def test_the_activation_walks_three_steps_and_activates_the_account() -> None:
    patient = make_patient()
    code = _issue(patient)
    browser = Client()
    assert "Code d&#x27;activation" in browser.get("/patient/activation/").content.decode()
    # No step may be skipped.
    assert browser.get("/patient/activation/securisation/")["Location"] == "/patient/activation/"
    response = browser.post(
        "/patient/activation/", {"matricule": patient.matricule, "code": code, "accept": "on"}
    )
    assert response["Location"] == "/patient/activation/securisation/"
    response = browser.post(
        "/patient/activation/securisation/",
        {"password1": PASSWORD, "password2": PASSWORD, "channel": "email", "address": "peppa@example.lu"},
    )
    assert response["Location"] == "/patient/activation/code/"
    assert mail.outbox[-1].to == ["peppa@example.lu"]
    start = last_sequence()
    response = browser.post("/patient/activation/code/", {"code": last_code()})
    assert response["Location"] == "/patient/connexion/"
    account = PatientAccount.objects.get(patient=patient)
    assert account.state == PatientAccount.State.ACTIVE and account.email == "peppa@example.lu"
    assert account.user.check_password(PASSWORD)
    assert PatientLetter.objects.get(account=account).used_at is not None
    assert events_after(start) == [("espace.activation.complete", "success")]
    # The letter cannot be used twice.
    again = Client().post(
        "/patient/activation/", {"matricule": patient.matricule, "code": code, "accept": "on"}
    )
    assert again.status_code == 200
    assert "Le matricule ou le code d&#x27;activation est incorrect" in again.content.decode()


def test_a_wrong_letter_code_is_refused_counted_and_traced_and_nothing_else_is_written() -> None:
    patient = make_patient()
    _issue(patient)
    start = last_sequence()
    response = Client().post(
        "/patient/activation/",
        {"matricule": patient.matricule, "code": "AAAA-AAAA-AAAA-AAAA", "accept": "on"},
    )
    assert response.status_code == 200
    assert "incorrect" in response.content.decode()
    assert events_after(start) == [("espace.activation.code", "failure")]
    assert PatientLetter.objects.get().failed_attempts == 1
    assert PatientAccount.objects.get().state == PatientAccount.State.REGISTERED
    pair = LoginThrottle.objects.get(scope=LoginThrottle.Scope.ACTIVATION_PAIR)
    assert pair.key.startswith("patient:")


def test_wrong_codes_from_one_network_are_delayed_after_three() -> None:
    patient = make_patient()
    code = _issue(patient)
    browser = Client(REMOTE_ADDR="198.51.100.7")
    for _ in range(3):
        browser.post(
            "/patient/activation/", {"matricule": patient.matricule, "code": "X" * 16, "accept": "on"}
        )
    # Even the right code waits now.
    response = browser.post(
        "/patient/activation/", {"matricule": patient.matricule, "code": code, "accept": "on"}
    )
    assert "Trop de tentatives infructueuses pour ce compte depuis votre adresse" in response.content.decode()
    assert PatientAccount.objects.get().state == PatientAccount.State.REGISTERED


def test_the_terms_must_be_accepted() -> None:
    patient = make_patient()
    code = _issue(patient)
    start = last_sequence()
    response = Client().post("/patient/activation/", {"matricule": patient.matricule, "code": code})
    assert "Vous devez accepter les Conditions" in response.content.decode()
    assert events_after(start) == []


def test_the_patient_logs_in_with_password_and_code() -> None:
    account = active_account()
    browser = Client()
    response = browser.post(
        "/patient/connexion/", {"matricule": account.patient.matricule, "password": PASSWORD}
    )
    assert response["Location"] == "/patient/connexion/code/"
    response = browser.post("/patient/connexion/code/", {"code": last_code()})
    assert response["Location"] == "/patient/dossier/"
    assert browser.get("/patient/dossier/").status_code == 200


def test_a_wrong_password_is_refused_with_the_professionals_message_and_counted() -> None:
    account = active_account()
    start = last_sequence()
    response = Client().post(
        "/patient/connexion/", {"matricule": account.patient.matricule, "password": "faux"}
    )
    assert response.status_code == 200
    assert "incorrect" in response.content.decode()
    assert ("accounts.login.password", "failure") in events_after(start)
    assert LoginThrottle.objects.filter(scope="account", key=account.user.username, failures=1).exists()


def test_patient_and_professional_credentials_never_cross() -> None:
    # A patient who is also a professional: same matricule, two accounts.
    account = active_account()
    professional = make_professional(matricule=account.patient.matricule)
    professional.user.username = account.patient.matricule
    professional.user.set_password("Autre-mot-de-passe-77")
    professional.user.save()
    # The patient's password does not open the professional account, nor the other way round.
    pro_page = Client().post(
        "/professionnel/connexion/", {"matricule": account.patient.matricule, "password": PASSWORD}
    )
    assert pro_page.status_code == 200 and "incorrect" in pro_page.content.decode()
    patient_page = Client().post(
        "/patient/connexion/", {"matricule": account.patient.matricule, "password": "Autre-mot-de-passe-77"}
    )
    assert patient_page.status_code == 200 and "incorrect" in patient_page.content.decode()


def test_a_patient_session_reaches_no_professional_page_and_vice_versa() -> None:
    account = active_account()
    patient_browser = logged_in_patient(account)
    for url in ("/edocuments/", "/edocuments/recherche/", "/edocuments/logiciels/"):
        response = patient_browser.get(url)
        assert response.status_code in (403, 404), url
    pro = make_professional()
    make_grant(pro, account.patient)
    pro_browser = Client()
    pro_browser.force_login(pro.user)
    for url in ("/patient/dossier/", "/patient/journal/", "/patient/choix/"):
        response = pro_browser.get(url)
        assert response.status_code == 403, url
        assert account.patient.matricule not in response.content.decode()
    # Anonymous visitors are sent to the patients' login.
    assert Client().get("/patient/dossier/")["Location"].startswith("/patient/connexion/")


def test_a_suspended_patient_account_cannot_log_in() -> None:
    account = active_account()
    PatientAccount.objects.filter(pk=account.pk).update(state=PatientAccount.State.SUSPENDED)
    response = Client().post(
        "/patient/connexion/", {"matricule": account.patient.matricule, "password": PASSWORD}
    )
    assert response.status_code == 200
    assert "/patient/connexion/code/" not in response.get("Location", "")
    assert logged_in_patient(account).get("/patient/dossier/").status_code == 403
    assert User.objects.get(pk=account.user_id).is_active
