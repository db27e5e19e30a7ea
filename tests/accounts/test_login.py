"""Login with matricule, password and one-time code; certificate login; locks; logout."""

import datetime
import html
import re
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from freezegun import freeze_time

from esante.accounts.models import Certificate, LoginThrottle, Professional
from esante.accounts.services import login_unlock, professional_set_state
from esante.audit.models import AuditEvent

from .conftest import PASSWORD, Pki, make_active, present

pytestmark = pytest.mark.django_db

LOGIN = "/professionnel/connexion/"
CODE = "/professionnel/connexion/code/"
MATRICULE = "19800101002"


def mailed_code() -> str:
    match = re.search(r"\b(\d{6})\b", mail.outbox[-1].body)
    assert match
    return match.group(1)


def password_step(client: Client, password: str = PASSWORD, matricule: str = MATRICULE) -> Any:
    return client.post(LOGIN, {"matricule": matricule, "password": password})


def actions(**filters: Any) -> list[tuple[str, str]]:
    return list(
        AuditEvent.objects.filter(action__startswith="accounts.", **filters)
        .order_by("sequence")
        .values_list("action", "outcome")
    )


def test_login_page_labels(client: Client) -> None:
    page = client.get(LOGIN).content.decode()
    assert "Connexion" in page and "Matricule, mot de passe et code" in page


def test_password_then_code_logs_in_and_rotates_the_session(client: Client, active: Professional) -> None:
    client.get(LOGIN)
    response = password_step(client)
    assert response.status_code == 302 and response["Location"] == CODE
    session_before = client.session.session_key
    assert mail.outbox[-1].to == ["luc.schmit@pharma.lu"]
    response = client.post(CODE, {"code": mailed_code()})
    assert response.status_code == 302 and response["Location"] == "/edocuments/"
    assert client.session.session_key != session_before
    assert int(client.session["_auth_user_id"]) == active.user.pk
    start = AuditEvent.objects.get(action="accounts.professional.register").sequence
    assert actions(sequence__gt=start) == [
        ("accounts.otp.send", "success"),
        ("accounts.login.password", "success"),
        ("accounts.login.code", "success"),
    ]

    response = client.post("/professionnel/deconnexion/")
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session
    assert actions(action="accounts.logout") == [("accounts.logout", "success")]


def test_code_is_single_use(client: Client, active: Professional) -> None:
    password_step(client)
    code = mailed_code()
    assert client.post(CODE, {"code": code})["Location"] == "/edocuments/"
    other = Client()
    password_step(other)
    mail.outbox.clear()
    response = other.post(CODE, {"code": code})
    assert response.status_code == 200  # the first code was consumed; a new one was sent


def test_unknown_matricule_and_wrong_password_look_the_same(client: Client, active: Professional) -> None:
    wrong_password = password_step(client, password="nope").content.decode()
    unknown = password_step(client, matricule="19850602037").content.decode()
    assert "Matricule ou mot de passe incorrect." in wrong_password
    assert "Matricule ou mot de passe incorrect." in unknown
    assert actions(action="accounts.login.password") == [
        ("accounts.login.password", "failure"),
        ("accounts.login.password", "failure"),
    ]


def password_from(client: Client, address: str, password: str = PASSWORD) -> Any:
    return client.post(LOGIN, {"matricule": MATRICULE, "password": password}, REMOTE_ADDR=address)


def test_password_failures_from_one_address_delay_it_1_minute_then_2(
    client: Client, active: Professional
) -> None:
    start = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.UTC)
    with freeze_time(start) as clock:
        for _ in range(2):
            assert "Matricule ou mot de passe incorrect." in password_step(client, "wrong").content.decode()
        page = password_step(client, "wrong").content.decode()
        assert "depuis votre adresse. Réessayez après le 02/03/2026 à 10:01:00" in page  # Luxembourg time
        assert actions(action="accounts.login.delay") == [("accounts.login.delay", "refused")]
        # Delayed: even the right password is refused from this address, without being checked.
        assert "Réessayez après le 02/03/2026 à 10:01:00" in password_step(client).content.decode()
        assert (
            AuditEvent.objects.filter(action="accounts.login.password", details__reason="delayed").count()
            == 1
        )
        clock.tick(datetime.timedelta(seconds=61))
        page = password_step(client, "wrong").content.decode()
        assert "Réessayez après le 02/03/2026 à 10:03:01" in page  # 2 minutes: doubled
        clock.tick(datetime.timedelta(minutes=2, seconds=1))
        assert password_step(client)["Location"] == CODE
        assert client.post(CODE, {"code": mailed_code()})["Location"] == "/edocuments/"
    row = LoginThrottle.objects.get(scope="account_address", key=f"{MATRICULE}|127.0.0.1")
    assert (row.failures, row.lock_count, row.locked_until) == (0, 0, None)
    assert LoginThrottle.objects.get(scope="account", key=MATRICULE).failures == 0
    assert not LoginThrottle.objects.filter(locked_until__isnull=False).exists()


def test_account_locks_after_the_configured_failures_from_every_address_for_15_minutes_then_30(
    client: Client, active: Professional, settings: Any
) -> None:
    settings.ESANTE_ACCOUNT_LOCK_AFTER_FAILURES = 5  # 100 by default
    start = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.UTC)
    with freeze_time(start) as clock:
        for number in range(4):
            page = password_from(client, f"192.0.2.{number + 1}", "wrong").content.decode()
            assert "Matricule ou mot de passe incorrect." in page
        page = password_from(client, "192.0.2.5", "wrong").content.decode()
        assert "Réessayez après le 02/03/2026 à 10:15" in page  # Luxembourg time
        assert "La connexion avec votre produit LuxTrust (« Connexion ») reste possible." in html.unescape(
            page
        )
        assert actions(action="accounts.login.lock") == [("accounts.login.lock", "refused")]
        # Locked as a whole: the right password from yet another address is refused too.
        assert "Réessayez après" in password_from(client, "198.51.100.7").content.decode()

        clock.tick(datetime.timedelta(minutes=16))
        for number in range(5):
            page = password_from(client, f"203.0.113.{number + 1}", "wrong").content.decode()
        assert "Réessayez après le 02/03/2026 à 10:46" in page  # 30 minutes: doubled
        clock.tick(datetime.timedelta(minutes=31))
        assert password_from(client, "198.51.100.7")["Location"] == CODE
        assert (
            client.post(CODE, {"code": mailed_code()}, REMOTE_ADDR="198.51.100.7")["Location"]
            == "/edocuments/"
        )
    row = LoginThrottle.objects.get(scope="account", key=MATRICULE)
    assert row.lock_count == 0 and row.failures == 0


def test_helpdesk_can_lift_a_lock_and_the_delays(client: Client, active: Professional, settings: Any) -> None:
    settings.ESANTE_ACCOUNT_LOCK_AFTER_FAILURES = 5
    for number in range(5):
        password_from(client, f"192.0.2.{number % 2 + 1}", "wrong")
    assert "Réessayez après" in password_from(client, "192.0.2.1").content.decode()
    login_unlock(professional=active, actor_label="helpdesk:marie")
    assert password_from(client, "192.0.2.1")["Location"] == CODE
    assert actions(action="accounts.login.unlock") == [("accounts.login.unlock", "success")]
    assert AuditEvent.objects.get(action="accounts.login.unlock").details == {"delays_lifted": 2}


def test_client_address_is_throttled_after_20_failures_an_hour(client: Client, db: Any) -> None:
    for number in range(20):
        page = password_step(client, "wrong", matricule=f"1985060203{number % 10}").content.decode()
    assert "Réessayez après" in page
    assert actions(action="accounts.address.lock") == [("accounts.address.lock", "refused")]
    make_active(matricule="19850602037", last_name="Weber", first_name="Tom", email="tom@weber.lu")
    assert "Réessayez après" in password_step(client, matricule="19850602037").content.decode()


def test_one_time_code_dies_after_three_wrong_tries(
    client: Client, active: Professional, settings: Any
) -> None:
    settings.ESANTE_THROTTLE_FREE_FAILURES = 10  # the code's own limit, not the address's delay
    password_step(client)
    code = mailed_code()
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(2):
        assert "Le code saisi est incorrect." in client.post(CODE, {"code": wrong}).content.decode()
    assert "Ce code n&#x27;est plus valable" in client.post(CODE, {"code": wrong}).content.decode()
    assert "Ce code n&#x27;est plus valable" in client.post(CODE, {"code": code}).content.decode()
    assert "_auth_user_id" not in client.session


def test_one_time_code_failures_delay_the_address_and_keep_the_pending_login(
    client: Client, active: Professional, settings: Any
) -> None:
    settings.ESANTE_OTP_RESEND_SECONDS = 0
    with freeze_time("2026-03-02 09:00:00"):
        password_step(client)
        client.post(CODE, {"code": "999999"})
        response = client.post(CODE, {"code": "999999"})
        assert "Le code saisi est incorrect." in response.content.decode()
        response = client.post(CODE, {"code": "999999"})  # the third failure of this address
        assert response.status_code == 200  # still on the code page: a delay is not a lock
        assert "Réessayez après le 02/03/2026 à 10:01:00" in response.content.decode()
        client.post(CODE, {"resend": "1"})
        response = client.post(CODE, {"code": mailed_code()})  # the right code, but too soon
        assert "Réessayez après le 02/03/2026 à 10:01:00" in response.content.decode()
    assert ("accounts.login.delay", "refused") in actions()
    assert AuditEvent.objects.filter(action="accounts.login.code", details__reason="delayed").count() == 1
    with freeze_time("2026-03-02 09:01:01"):
        assert client.post(CODE, {"code": mailed_code()})["Location"] == "/edocuments/"


def test_one_time_code_failures_lock_the_account_at_the_configured_number(
    client: Client, active: Professional, settings: Any
) -> None:
    settings.ESANTE_OTP_RESEND_SECONDS = 0
    settings.ESANTE_ACCOUNT_LOCK_AFTER_FAILURES = 5
    password_step(client)
    for attempt in range(5):
        if attempt == 2:
            client.post(CODE, {"resend": "1"}, REMOTE_ADDR="192.0.2.2")
        response = client.post(CODE, {"code": "999999"}, REMOTE_ADDR=f"192.0.2.{attempt // 2 + 1}")
    assert response.status_code == 302 and response["Location"] == LOGIN
    assert "Réessayez après" in password_step(client).content.decode()
    assert ("accounts.login.lock", "refused") in actions()


def test_one_time_code_expires_after_5_minutes(client: Client, active: Professional) -> None:
    with freeze_time() as clock:
        password_step(client)
        code = mailed_code()
        clock.tick(datetime.timedelta(minutes=5, seconds=1))
        page = client.post(CODE, {"code": code}).content.decode()
    assert "Ce code n&#x27;est plus valable" in page


def test_resend_is_throttled(client: Client, active: Professional) -> None:
    password_step(client)
    assert len(mail.outbox) == 1
    client.post(CODE, {"resend": "1"})
    assert len(mail.outbox) == 1
    assert ("accounts.otp.send", "refused") in actions()


def test_suspended_account_is_refused(client: Client, active: Professional) -> None:
    professional_set_state(
        professional=active, state=Professional.State.SUSPENDED, actor_label="helpdesk:marie"
    )
    assert "Matricule ou mot de passe incorrect." in password_step(client).content.decode()
    assert mail.outbox == []


def test_suspension_during_login_is_refused(client: Client, active: Professional) -> None:
    password_step(client)
    professional_set_state(
        professional=active, state=Professional.State.SUSPENDED, actor_label="helpdesk:marie"
    )
    page = client.post(CODE, {"code": mailed_code()}).content.decode()
    assert "suspendu" in page
    assert "_auth_user_id" not in client.session


def test_code_page_without_password_step_redirects(client: Client) -> None:
    assert client.get(CODE)["Location"] == LOGIN


def test_csrf_is_enforced_on_login_forms(csrf_client: Client, active: Professional) -> None:
    assert password_step(csrf_client).status_code == 403
    assert csrf_client.post("/professionnel/connexion/certificat/").status_code == 403
    assert csrf_client.post("/professionnel/deconnexion/").status_code == 403
    assert mail.outbox == []


def test_session_fixation_is_impossible(client: Client, active: Professional) -> None:
    client.get(LOGIN)
    client.session.save()
    planted = client.session.session_key
    password_step(client)
    client.post(CODE, {"code": mailed_code()})
    assert client.session.session_key != planted


def bind(pki: Pki, professional: Professional) -> Any:
    from esante.accounts.certificates import certificate_verify

    from .conftest import pem

    cert = pki.issue(surname=professional.last_name, given_name=professional.first_name)
    verified = certificate_verify(pem(cert))
    Certificate.objects.create(
        professional=professional,
        subject=verified.subject,
        issuer=verified.issuer,
        serial=verified.serial,
        fingerprint_sha256=verified.fingerprint_sha256,
        not_before=verified.not_before,
        not_after=verified.not_after,
        bound_at=verified.not_before,
    )
    return cert


def test_certificate_login(client: Client, pki: Pki, active: Professional) -> None:
    cert = bind(pki, active)
    response = present(client, cert, start_url="/professionnel/connexion/certificat/")
    assert response["Location"] == "/edocuments/"
    assert int(client.session["_auth_user_id"]) == active.user.pk
    assert [(e.action, e.outcome, e.client_address) for e in AuditEvent.objects.order_by("sequence")][
        -2:
    ] == [
        ("accounts.certificate.present", "success", "192.0.2.10"),  # the origin, behind the trusted proxy
        ("accounts.login.certificate", "success", "127.0.0.1"),  # the portal
    ]


def test_certificate_login_refusals(client: Client, pki: Pki, active: Professional) -> None:
    cert = bind(pki, active)
    start = "/professionnel/connexion/certificat/"
    # The header is believed only from a trusted proxy.
    response = present(client, cert, start_url=start, REMOTE_ADDR="192.0.2.99")
    assert response["Location"] == LOGIN
    assert "_auth_user_id" not in client.session
    # A valid certificate that was never bound.
    present(client, pki.issue(surname="Autre"), start_url=start)
    assert "_auth_user_id" not in client.session
    # The bound certificate once revoked.
    pki.revoke(cert)
    present(client, cert, start_url=start)
    assert "Ce certificat a été révoqué." in client.get(LOGIN).content.decode()
    assert "_auth_user_id" not in client.session
    assert [
        (event.outcome, event.details.get("reason"))
        for event in AuditEvent.objects.filter(action="accounts.login.certificate").order_by("sequence")
    ] == [("failure", "no_certificate"), ("refused", "unbound"), ("failure", "revoked")]


def test_operators_reach_the_admin_only_through_the_platform_login(
    client: Client, db: Any, settings: Any
) -> None:
    settings.ESANTE_ADMIN_REQUIRE_OTP = True
    operator = make_active(
        matricule="19850602037", last_name="Helpdesk", first_name="Marie", email="marie@esante.lu"
    )
    User = type(operator.user)
    User.objects.filter(pk=operator.user.pk).update(is_staff=True, is_superuser=True)
    response = client.get("/operateurs/")
    assert response.status_code == 302
    response = client.get(response["Location"])
    assert response["Location"].startswith(LOGIN + "?next=")
    # A password alone is not enough: the admin wants an OTP-verified session.
    client.force_login(operator.user)
    assert client.get("/operateurs/").status_code == 302
    client.logout()
    client.post(f"{LOGIN}?next=/operateurs/", {"matricule": "19850602037", "password": PASSWORD})
    assert client.post(CODE, {"code": mailed_code()})["Location"] == "/operateurs/"
    assert client.get("/operateurs/").status_code == 200
    page = client.get(f"/operateurs/accounts/professional/{operator.pk}/change/")
    assert page.status_code == 200
    assert actions(action="accounts.admin.read") == [("accounts.admin.read", "success")]


def test_next_must_stay_on_the_site(client: Client, active: Professional) -> None:
    client.post(f"{LOGIN}?next=https://evil.example/", {"matricule": MATRICULE, "password": PASSWORD})
    assert client.post(CODE, {"code": mailed_code()})["Location"] == "/edocuments/"
