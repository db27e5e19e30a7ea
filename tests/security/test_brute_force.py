"""Brute force on every login factor, from the attacker's side (issue 10, finding 3).

The victim's matricule is guessable (it starts with the birth date), so the counters must not let
an attacker lock the victim out. For each factor — the password, the activation code (step 2 of
the wizard), the one-time code at login and at activation step 4 — these tests check, through the
portal and the real services:

- the victim, from another address, still gets in while the attacker is refused;
- the attacker's own address gets growing delays (1 minute, 2, 4, ... capped), refused without
  the credentials being evaluated, each refusal traced;
- the account as a whole is locked (the letter blocked) only after the far threshold
  (``ESANTE_ACCOUNT_LOCK_AFTER_FAILURES``, 100), counted over every address;
- the certificate login stays open while the password login is locked;
- the professional is told by e-mail, once (no flood), with nothing secret in the mail, through
  the platform's file e-mail backend (``.eml`` files in the outbox);
- every refusal, delay, lock and notice is in the audit trail.
"""

import datetime
import email
import email.policy
import re
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from django.test import Client, TestCase
from django.utils import timezone
from freezegun import freeze_time

from esante.accounts import certificates
from esante.accounts.models import ActivationLetter, Certificate, LoginThrottle, Professional
from esante.accounts.services import activation_letter_issue, professional_register
from esante.audit.models import AuditEvent
from tests.accounts.conftest import ORIGIN, PASSWORD, PROXY, Pki, make_active, make_ca, pem

pytestmark = pytest.mark.django_db

LOGIN = "/professionnel/connexion/"
CODE = "/professionnel/connexion/code/"
ACTIVATION = "/professionnel/activation/"
MATRICULE = "19800101002"  # the victim: Luc Schmit, born 1 January 1980
VICTIM_EMAIL = "luc.schmit@pharma.lu"
ATTACKER = "203.0.113.66"
VICTIM = "198.51.100.10"
NOTICE_SUBJECT = "eSanté : tentatives de connexion infructueuses sur votre compte"
WRONG_LOGIN = "Matricule ou mot de passe incorrect."
WRONG_ACTIVATION = "Le matricule ou le code d&#x27;activation est incorrect."
START = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.UTC)  # 10:00 in Luxembourg


# --- the platform as deployed: file e-mail backend, certificate origin ---------------------------


@pytest.fixture(autouse=True)
def _platform(tmp_path: Path, settings: Any) -> None:
    settings.OUTBOX_DIR = tmp_path / "outbox"
    settings.ESANTE_OUTBOX_ECHO = False
    settings.EMAIL_BACKEND = "esante.accounts.delivery.FileEmailBackend"
    settings.ESANTE_CERTIFICATE_ORIGIN = ORIGIN
    settings.ESANTE_LOCAL_CA = ""


@pytest.fixture
def pki(tmp_path: Path, settings: Any) -> Iterator[Pki]:
    ca = make_ca("Test LuxTrust Global Qualified CA")
    (tmp_path / "ca.pem").write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    authority = Pki(ca=ca, directory=tmp_path)
    authority.write_crl()
    settings.ESANTE_TRUSTED_CA = str(tmp_path / "ca.pem")
    settings.ESANTE_CRL = [str(tmp_path / "ca.crl")]
    settings.ESANTE_TRUSTED_PROXIES = [PROXY]
    certificates._configured.cache_clear()
    yield authority
    certificates._configured.cache_clear()


@pytest.fixture
def victim(db: Any) -> Professional:
    return make_active(matricule=MATRICULE, last_name="Schmit", first_name="Luc", email=VICTIM_EMAIL)


class Browser(Client):
    """A browser at one address. What the platform does after a commit (the attack notice is
    sent then) runs at the end of each request, as in production: a test's own transaction never
    commits, so it would never run otherwise."""

    def request(self, **request: Any) -> Any:
        with TestCase.captureOnCommitCallbacks(execute=True):
            return super().request(**request)


def client_from(address: str) -> Client:
    """A browser at ``address`` (every request it sends comes from there)."""
    return Browser(REMOTE_ADDR=address)


def mails(settings: Any) -> list[EmailMessage]:
    outbox = Path(settings.OUTBOX_DIR)
    # In write order (names carry the frozen clock's time: all alike under freeze_time).
    files = sorted(outbox.glob("*.eml"), key=lambda path: path.stat().st_mtime_ns) if outbox.exists() else []
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for path in files
    ]


def subject(message: EmailMessage) -> str:
    return str(message["Subject"]).strip()  # a folded, encoded header: parsed with a leading space


def notices(settings: Any) -> list[EmailMessage]:
    return [message for message in mails(settings) if subject(message) == NOTICE_SUBJECT]


def body(message: EmailMessage) -> str:
    return str(message.get_content())


def last_code(settings: Any) -> str:
    codes = [m for m in mails(settings) if subject(m) == "eSanté : votre code à usage unique"]
    match = re.search(r"\b(\d{6})\b", body(codes[-1]))
    assert match
    return match.group(1)


def password(client: Client, value: str, matricule: str = MATRICULE) -> Any:
    return client.post(LOGIN, {"matricule": matricule, "password": value})


def page(response: Any) -> str:
    return str(response.content.decode())


def events(action: str, **filters: Any) -> list[tuple[str, Any, str | None]]:
    """(outcome, reason, client address) of the events of ``action``, oldest first."""
    return [
        (event.outcome, event.details.get("reason"), event.client_address)
        for event in AuditEvent.objects.filter(action=action, **filters).order_by("sequence")
    ]


def counters() -> list[tuple[str, str, int, Any]]:
    return list(
        LoginThrottle.objects.order_by("scope", "key").values_list("scope", "key", "failures", "locked_until")
    )


def log_in(client: Client, settings: Any) -> None:
    """The victim's whole login: password, then the code mailed to them."""
    response = password(client, PASSWORD)
    assert response.status_code == 302 and response["Location"] == CODE, page(response)[-800:]
    response = client.post(CODE, {"code": last_code(settings)})
    assert response.status_code == 302 and response["Location"] == "/edocuments/", page(response)[-800:]


# --- password ------------------------------------------------------------------------------------


def test_regression_five_wrong_passwords_from_an_attacker_do_not_lock_out_the_victim(
    victim: Professional, settings: Any
) -> None:
    """On the main branch before this change, these five failures locked the account 15 minutes
    for everyone: the victim's right password from their own workstation was refused."""
    attacker = client_from(ATTACKER)
    for _ in range(5):
        assert "_auth_user_id" not in attacker.session
        password(attacker, "guess")
    log_in(client_from(VICTIM), settings)
    assert events("accounts.login.code")[-1] == ("success", None, VICTIM)
    assert not LoginThrottle.objects.filter(scope="account", locked_until__isnull=False).exists()


def test_password_attacker_gets_growing_delays_from_their_own_address(
    victim: Professional, settings: Any
) -> None:
    attacker, victim_browser = client_from(ATTACKER), client_from(VICTIM)
    with freeze_time(START) as clock:
        assert WRONG_LOGIN in page(password(attacker, "guess-1"))
        assert WRONG_LOGIN in page(password(attacker, "guess-2"))
        seen = []
        for number in range(3, 11):
            response = page(password(attacker, f"guess-{number}"))
            until = LoginThrottle.objects.get(
                scope="account_address", key=f"{MATRICULE}|{ATTACKER}"
            ).locked_until
            assert until is not None
            seen.append(round((until - timezone.now()).total_seconds()))
            local = until.astimezone(datetime.timezone(datetime.timedelta(hours=1)))
            assert f"depuis votre adresse. Réessayez après le 02/03/2026 à {local:%H:%M:%S}" in response
            # While delayed, every try is refused unevaluated: one refusal event, counters unchanged.
            before, traced = counters(), AuditEvent.objects.count()
            assert "Réessayez après" in page(password(attacker, PASSWORD))  # even the right password
            assert counters() == before and AuditEvent.objects.count() == traced + 1
            assert events("accounts.login.password")[-1] == ("refused", "delayed", ATTACKER)
            clock.tick(datetime.timedelta(seconds=seen[-1] + 1))
        # 1 minute, doubling, capped at ESANTE_THROTTLE_MAX_DELAY_MINUTES (an hour).
        assert seen == [60, 120, 240, 480, 960, 1920, 3600, 3600]
        # Meanwhile the victim, from their own address, is not slowed down at all.
        log_in(victim_browser, settings)
    assert len(events("accounts.login.delay")) == 8
    assert {e[2] for e in events("accounts.login.delay")} == {ATTACKER}
    assert len(events("accounts.login.password", outcome="failure")) == 10  # only these were checked
    # The victim's success resets the account's count, not the attacker's address.
    assert LoginThrottle.objects.get(scope="account", key=MATRICULE).failures == 0
    assert LoginThrottle.objects.get(scope="account_address", key=f"{MATRICULE}|{ATTACKER}").failures == 10


def test_unknown_matricule_is_delayed_the_same_and_nobody_is_mailed(db: Any, settings: Any) -> None:
    attacker = client_from(ATTACKER)
    with freeze_time(START):
        responses = [page(password(attacker, "guess", matricule="19850602037")) for _ in range(3)]
    assert WRONG_LOGIN in responses[0] and WRONG_LOGIN in responses[1]
    assert "Réessayez après le 02/03/2026 à 10:01:00" in responses[2]
    assert notices(settings) == []
    assert len(events("accounts.login.delay")) == 1


def test_password_account_wide_lock_only_after_100_failures_over_all_addresses(
    victim: Professional, settings: Any
) -> None:
    assert settings.ESANTE_ACCOUNT_LOCK_AFTER_FAILURES == 100  # the default, NIST SP 800-63B's maximum
    with freeze_time(START):
        for number in range(99):  # a botnet: one try per address, no address is ever delayed
            assert WRONG_LOGIN in page(
                password(client_from(f"10.66.{number // 250}.{number % 250 + 1}"), "guess")
            )
        assert not LoginThrottle.objects.filter(locked_until__isnull=False).exists()
        last = page(password(client_from("10.66.9.9"), "guess"))
        assert "l&#x27;accès est bloqué. Réessayez après le 02/03/2026 à 10:15" in last
        assert "La connexion avec votre produit LuxTrust (« Connexion ») reste possible." in last
        # Locked as a whole now: the victim's right password from their own address is refused.
        refused = page(password(client_from(VICTIM), PASSWORD))
        assert "Réessayez après le 02/03/2026 à 10:15" in refused
    assert events("accounts.login.lock") == [("refused", None, "10.66.9.9")]
    assert events("accounts.login.password")[-1] == ("refused", "locked", VICTIM)
    assert len(events("accounts.login.password", outcome="failure")) == 100
    # Told once, at the lock (no address was delayed before).
    (notice,) = notices(settings)
    assert notice["To"] == VICTIM_EMAIL
    assert "la connexion par mot de passe et code est bloquée jusqu'au 02/03/2026 à 10:15" in body(notice)
    assert events("accounts.attack.notify") == [("success", None, "10.66.9.9")]
    assert AuditEvent.objects.get(action="accounts.attack.notify").details == {
        "factor": "password",
        "trigger": "lock",
        "channel": "email",
    }


def test_certificate_login_works_while_the_password_login_is_locked(
    victim: Professional, pki: Pki, settings: Any
) -> None:
    from tests.accounts.conftest import present

    settings.ESANTE_ACCOUNT_LOCK_AFTER_FAILURES = 5  # the lock itself is tested above at 100
    cert = pki.issue(surname="Schmit", given_name="Luc")
    verified = certificates.certificate_verify(pem(cert))
    Certificate.objects.create(
        professional=victim,
        subject=verified.subject,
        issuer=verified.issuer,
        serial=verified.serial,
        fingerprint_sha256=verified.fingerprint_sha256,
        not_before=verified.not_before,
        not_after=verified.not_after,
        bound_at=verified.not_before,
    )
    for number in range(5):
        password(client_from(f"10.66.0.{number + 1}"), "guess")
    browser = client_from(VICTIM)
    assert "l&#x27;accès est bloqué" in page(password(browser, PASSWORD))
    response = present(browser, cert, start_url="/professionnel/connexion/certificat/")
    assert response.status_code == 302 and response["Location"] == "/edocuments/"
    assert int(browser.session["_auth_user_id"]) == victim.user_id
    assert events("accounts.login.certificate") == [("success", None, VICTIM)]


# --- the notice --------------------------------------------------------------------------------------


def test_the_professional_is_told_once_an_hour_with_nothing_secret(
    victim: Professional, settings: Any
) -> None:
    with freeze_time(START) as clock:
        for _ in range(3):
            password(client_from(ATTACKER), "Secret-guess-1")
        (notice,) = notices(settings)
        assert notice["To"] == VICTIM_EMAIL
        text = body(notice)
        assert "Plusieurs tentatives de connexion infructueuses avec votre mot de passe" in text
        assert "le 02/03/2026 à 10:00, heure de Luxembourg" in text
        assert "(+352) 27 12 50 18 33" in text
        for secret in (MATRICULE, ATTACKER, "Secret-guess-1", PASSWORD):
            assert secret not in text and secret not in subject(notice)
        # A second address delayed within the hour, then further failures: no second mail.
        for _ in range(6):
            password(client_from("203.0.113.67"), "Secret-guess-2")
        clock.tick(datetime.timedelta(minutes=59))
        for _ in range(3):
            password(client_from("203.0.113.68"), "Secret-guess-3")
        assert len(notices(settings)) == 1
        # An hour later, a new address's first delay is told again.
        clock.tick(datetime.timedelta(minutes=2))
        for _ in range(3):
            password(client_from("203.0.113.69"), "Secret-guess-4")
    assert len(notices(settings)) == 2
    assert events("accounts.attack.notify") == [
        ("success", None, ATTACKER),
        ("success", None, "203.0.113.69"),
    ]
    assert len(events("accounts.login.delay")) == 4  # one per address: the later tries were not evaluated


def test_a_notice_that_cannot_be_sent_is_traced_and_changes_nothing_else(
    victim: Professional, settings: Any
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2  # nothing listens
    attacker = client_from(ATTACKER)
    with freeze_time(START):
        responses = [page(password(attacker, "guess")) for _ in range(3)]
    assert "Réessayez après le 02/03/2026 à 10:01:00" in responses[-1]
    (failed,) = AuditEvent.objects.filter(action="accounts.attack.notify")
    assert failed.outcome == "failure" and failed.details["trigger"] == "delay"
    assert LoginThrottle.objects.get(scope="account", key=MATRICULE).notified_at is None  # tried again later


# --- one-time code at login ------------------------------------------------------------------------


def test_login_code_brute_force_delays_the_attacker_and_spares_the_victim(
    victim: Professional, settings: Any
) -> None:
    """The attacker knows the password (phished) and guesses the code from their address."""
    settings.ESANTE_OTP_RESEND_SECONDS = 0
    attacker = client_from(ATTACKER)
    with freeze_time(START):
        assert password(attacker, PASSWORD)["Location"] == CODE
        assert "Le code saisi est incorrect." in page(attacker.post(CODE, {"code": "000001"}))
        assert "Le code saisi est incorrect." in page(attacker.post(CODE, {"code": "000002"}))
        third = attacker.post(CODE, {"code": "000003"})
        assert third.status_code == 200 and "Réessayez après le 02/03/2026 à 10:01:00" in page(third)
        attacker.post(CODE, {"resend": "1"})
        before = counters()
        refused = attacker.post(CODE, {"code": last_code(settings)})  # even the right code
        assert "Réessayez après le 02/03/2026 à 10:01:00" in page(refused)
        assert counters() == before and "_auth_user_id" not in attacker.session
        log_in(client_from(VICTIM), settings)
    assert events("accounts.login.code", outcome="refused") == [("refused", "delayed", ATTACKER)]
    assert events("accounts.login.delay") == [("refused", None, ATTACKER)]
    (notice,) = notices(settings)
    assert "avec le code à usage unique" in body(notice)
    assert AuditEvent.objects.get(action="accounts.attack.notify").details["factor"] == "otp"


def test_login_code_failures_lock_the_account_only_at_the_far_threshold(
    victim: Professional, settings: Any
) -> None:
    settings.ESANTE_OTP_RESEND_SECONDS = 0
    settings.ESANTE_ACCOUNT_LOCK_AFTER_FAILURES = 6
    attacker = client_from(ATTACKER)
    password(attacker, PASSWORD)
    for number in range(6):  # two per address: never delayed, counted on the account
        if number % 3 == 2:
            attacker.post(CODE, {"resend": "1"})
        response = attacker.post(CODE, {"code": "000000"}, REMOTE_ADDR=f"203.0.113.{number // 2 + 1}")
    assert response.status_code == 302 and response["Location"] == LOGIN  # a lock ends the login
    assert events("accounts.login.lock") == [("refused", None, "203.0.113.3")]
    assert "l&#x27;accès est bloqué" in page(password(client_from(VICTIM), PASSWORD))


# --- activation code (step 2) --------------------------------------------------------------------


@pytest.fixture
def letter(db: Any, settings: Any) -> str:
    """A registered (not yet active) professional with a fresh letter; returns its code."""
    settings.ESANTE_ACTIVATION_CERTIFICATE_OPTIONAL = True  # step 1 skipped: the code step is the target
    professional = professional_register(
        matricule="19750315006",
        profession="pharmacist",
        last_name="Muller",
        first_name="Anne",
        email="anne.muller@pharmacie.lu",
        mobile="+352 621 111 222",
    )
    _, code = activation_letter_issue(professional=professional)
    return code


def at_code_step(address: str) -> Client:
    browser = client_from(address)
    assert browser.post(ACTIVATION, {"accept": "on"})["Location"] == f"{ACTIVATION}etape/1/"
    assert browser.post(f"{ACTIVATION}etape/1/", {"skip": "1"})["Location"] == f"{ACTIVATION}etape/2/"
    return browser


def activation_code(browser: Client, code: str, **headers: str) -> Any:
    return browser.post(
        f"{ACTIVATION}etape/2/", {"received": "oui", "matricule": "19750315006", "code": code}, **headers
    )


def test_regression_five_wrong_activation_codes_do_not_block_the_victims_letter(
    letter: str, settings: Any
) -> None:
    """On the main branch before this change, five wrong codes blocked the letter for good: the
    professional needed a new postal letter."""
    attacker = at_code_step(ATTACKER)
    with freeze_time(START) as clock:
        for _ in range(5):
            activation_code(attacker, "AAAA-AAAA-AAAA-AAAA")
            clock.tick(datetime.timedelta(minutes=5))  # patient: waits out every delay
        victim_browser = at_code_step(VICTIM)
        response = activation_code(victim_browser, letter)
    assert response.status_code == 302 and response["Location"] == f"{ACTIVATION}etape/3/"
    assert ActivationLetter.objects.get().failed_attempts == 5


def test_activation_code_attacker_gets_growing_delays_from_their_own_address(
    letter: str, settings: Any
) -> None:
    attacker = at_code_step(ATTACKER)
    with freeze_time(START) as clock:
        assert WRONG_ACTIVATION in page(activation_code(attacker, "AAAA-AAAA-AAAA-AAAA"))
        assert WRONG_ACTIVATION in page(activation_code(attacker, "AAAA-AAAA-AAAA-AAAC"))
        third = page(activation_code(attacker, "AAAA-AAAA-AAAA-AAAD"))
        assert "depuis votre adresse. Réessayez après le 02/03/2026 à 10:01:00" in third
        before, traced = counters(), AuditEvent.objects.count()
        assert "Réessayez après le 02/03/2026 à 10:01:00" in page(activation_code(attacker, letter))
        assert counters() == before and AuditEvent.objects.count() == traced + 1
        clock.tick(datetime.timedelta(seconds=61))
        fourth = page(activation_code(attacker, "AAAA-AAAA-AAAA-AAAE"))
        assert "Réessayez après le 02/03/2026 à 10:03:01" in fourth  # 2 minutes: doubled
        # Meanwhile the professional, from their own address, goes on.
        assert activation_code(at_code_step(VICTIM), letter)["Location"] == f"{ACTIVATION}etape/3/"
    code_events = events("accounts.activation.code")
    assert code_events.count(("refused", "delayed", ATTACKER)) == 1
    assert code_events.count(("failure", "wrong_code", ATTACKER)) == 4
    assert events("accounts.activation.delay") == [("refused", None, ATTACKER)] * 2
    (notice,) = notices(settings)
    assert notice["To"] == "anne.muller@pharmacie.lu"
    assert "avec votre code d'activation" in body(notice)
    assert letter not in body(notice) and "19750315006" not in body(notice)


def test_activation_letter_blocked_only_after_100_failures_over_all_addresses(
    letter: str, settings: Any
) -> None:
    botnet = at_code_step(ATTACKER)
    for number in range(100):
        response = activation_code(
            botnet, "AAAA-AAAA-AAAA-AAAA", REMOTE_ADDR=f"10.66.{number // 250}.{number % 250 + 1}"
        )
        assert WRONG_ACTIVATION in page(response)
        if number == 98:
            assert ActivationLetter.objects.get().is_usable(datetime.datetime.now(datetime.UTC))
    assert ActivationLetter.objects.get().failed_attempts == 100
    assert WRONG_ACTIVATION in page(activation_code(at_code_step(VICTIM), letter))  # blocked now
    assert events("accounts.activation_letter.block") == [("refused", None, "10.66.0.100")]
    assert events("accounts.activation.code")[-1] == ("failure", "letter_blocked", VICTIM)
    (notice,) = notices(settings)
    assert "votre code d'activation est bloqué : demandez un nouveau courrier" in body(notice)
    assert AuditEvent.objects.get(action="accounts.attack.notify").details["trigger"] == "letter_blocked"


# --- one-time code at activation (step 4) ------------------------------------------------------------


def at_security_step(address: str, code: str) -> Client:
    browser = at_code_step(address)
    assert activation_code(browser, code)["Location"] == f"{ACTIVATION}etape/3/"
    assert browser.post(f"{ACTIVATION}etape/3/", {"next": ""})["Location"] == f"{ACTIVATION}etape/4/"
    choose = {
        "action": "choose",
        "password1": PASSWORD,
        "password2": PASSWORD,
        "channel": "email",
        "address": "anne.muller@pharmacie.lu",
    }
    assert browser.post(f"{ACTIVATION}etape/4/", choose)["Location"] == f"{ACTIVATION}etape/4/"
    return browser


def security_code(browser: Client, code: str) -> Any:
    return browser.post(f"{ACTIVATION}etape/4/", {"action": "verify", "code": code})


def test_activation_one_time_code_brute_force_delays_the_attacker_and_spares_the_victim(
    letter: str, settings: Any
) -> None:
    """The attacker holds the letter's code (a stolen letter) and guesses the channel check."""
    with freeze_time(START):
        attacker = at_security_step(ATTACKER, letter)
        assert "Le code saisi est incorrect." in page(security_code(attacker, "000001"))
        assert "Le code saisi est incorrect." in page(security_code(attacker, "000002"))
        assert "Réessayez après le 02/03/2026 à 10:01:00" in page(security_code(attacker, "000003"))
        before = counters()
        assert "Réessayez après le 02/03/2026 à 10:01:00" in page(security_code(attacker, "000004"))
        assert counters() == before
        victim_browser = at_security_step(VICTIM, letter)
        response = security_code(victim_browser, last_code(settings))
    assert response.status_code == 302 and response["Location"] == f"{ACTIVATION}confirmation/"
    assert Professional.objects.get(matricule="19750315006").state == Professional.State.ACTIVE
    assert events("accounts.activation.security", outcome="refused") == [("refused", "delayed", ATTACKER)]
    assert events("accounts.activation.delay") == [("refused", None, ATTACKER)]
    assert ActivationLetter.objects.get().failed_attempts == 3  # counted towards the far block
    (notice,) = notices(settings)
    assert "avec le code à usage unique" in body(notice)
    # Whoever got to step 4 holds the letter's code: the helpdesk must block it.
    assert "détient le code d'activation de votre courrier" in " ".join(body(notice).split())
    assert AuditEvent.objects.get(action="accounts.attack.notify").details["factor"] == "activation_otp"


def test_activation_one_time_codes_count_towards_the_letter_block(letter: str, settings: Any) -> None:
    settings.ESANTE_ACCOUNT_LOCK_AFTER_FAILURES = 2
    attacker = at_security_step(ATTACKER, letter)
    security_code(attacker, "000001")
    security_code(attacker, "000002")
    assert events("accounts.activation_letter.block") == [("refused", None, ATTACKER)]
    assert not ActivationLetter.objects.get().is_usable(datetime.datetime.now(datetime.UTC))
    # The attacker's wizard cannot complete with the blocked letter, even with the right code.
    response = security_code(attacker, last_code(settings))
    assert response.status_code == 200
    assert Professional.objects.get(matricule="19750315006").state == Professional.State.REGISTERED
    assert events("accounts.activation.complete") == [("refused", "letter_not_usable", ATTACKER)]


# --- a shared address (a hospital's NAT) -------------------------------------------------------------

HOSPITAL = "192.0.2.50"


def spray(address: str, count: int) -> list[str]:
    """Wrong passwords for random matricules from ``address``: a spray the pair counter never sees."""
    return [page(password(client_from(address), "x", matricule=f"19700101{n:05d}")) for n in range(count)]


def test_regression_a_spray_from_a_nat_address_does_not_lock_out_its_staff(
    victim: Professional, settings: Any
) -> None:
    """On the reviewed branch twenty wrong passwords with random matricules from a hospital's NAT
    address blocked it for the hour: the victim's right password from there was refused."""
    with freeze_time(START) as clock:
        log_in(client_from(HOSPITAL), settings)  # the victim works there: a known network
        clock.tick(datetime.timedelta(minutes=1))
        spray(HOSPITAL, 20)
        log_in(client_from(HOSPITAL), settings)
    assert events("accounts.address.lock") == [("refused", None, HOSPITAL)]
    assert events("accounts.login.code")[-1] == ("success", None, HOSPITAL)


def test_the_network_limit_is_a_growing_delay_for_accounts_never_used_from_there(
    victim: Professional, settings: Any
) -> None:
    newcomer = make_active(matricule="19850602037", last_name="Weber", first_name="Tom", email="tom@weber.lu")
    with freeze_time(START) as clock:
        last = spray(HOSPITAL, 20)[-1]
        assert "l&#x27;accès est bloqué. Réessayez après le 02/03/2026 à 10:01" in last  # a minute
        before = [row for row in counters() if row[2] or row[3]]
        refused = page(password(client_from(HOSPITAL), PASSWORD, matricule=newcomer.matricule))
        assert "Réessayez après le 02/03/2026 à 10:01" in refused
        assert [row for row in counters() if row[2] or row[3]] == before  # refused unevaluated
        assert events("accounts.login.password")[-1] == ("refused", "address_delayed", HOSPITAL)
        clock.tick(datetime.timedelta(seconds=61))
        assert "Réessayez après le 02/03/2026 à 10:03" in spray(HOSPITAL, 1)[0]  # 2 minutes: doubled
        clock.tick(datetime.timedelta(seconds=121))
        log_in(client_from(HOSPITAL), settings)  # the victim, who never came from there either
    assert [e[0] for e in events("accounts.address.lock")] == ["refused", "refused"]


def test_certificate_login_is_never_refused_by_the_network_limit(
    victim: Professional, pki: Pki, settings: Any
) -> None:
    from tests.accounts.conftest import present

    cert = pki.issue(surname="Schmit", given_name="Luc")
    verified = certificates.certificate_verify(pem(cert))
    Certificate.objects.create(
        professional=victim,
        subject=verified.subject,
        issuer=verified.issuer,
        serial=verified.serial,
        fingerprint_sha256=verified.fingerprint_sha256,
        not_before=verified.not_before,
        not_after=verified.not_after,
        bound_at=verified.not_before,
    )
    spray(HOSPITAL, 25)
    browser = client_from(HOSPITAL)
    assert "Réessayez après" in page(password(browser, PASSWORD))
    response = present(browser, cert, start_url="/professionnel/connexion/certificat/")
    assert response.status_code == 302 and response["Location"] == "/edocuments/"
    assert events("accounts.login.certificate") == [("success", None, HOSPITAL)]
    # Known now: the password login from that network is no longer delayed for this account.
    assert password(client_from(HOSPITAL), PASSWORD)["Location"] == CODE


def test_refused_certificates_count_on_no_password_counter(db: Any, pki: Pki, settings: Any) -> None:
    from tests.accounts.conftest import present

    settings.ESANTE_ADDRESS_MAX_FAILURES_PER_HOUR = 2
    stranger = pki.issue(surname="Inconnu", given_name="Jean", self_signed=True)
    browser = client_from(HOSPITAL)
    for _ in range(3):
        response = present(browser, stranger, start_url="/professionnel/connexion/certificat/")
        assert "_auth_user_id" not in browser.session
    assert [e[0] for e in events("accounts.login.certificate")] == ["failure"] * 3
    assert counters() == [] and events("accounts.address.lock") == []
    assert response.status_code == 302 and response["Location"] == LOGIN


# --- what the notice advises, per factor ----------------------------------------------------------


@pytest.mark.parametrize(
    ("factor", "advice", "absent"),
    [
        ("password", "Sinon, vous n'avez rien à faire", "changez-le"),
        ("activation_code", "Sinon, vous n'avez rien à faire", "changez-le"),
        (
            "otp",
            "quelqu'un connaît votre mot de passe : changez-le sans attendre (« Mot de passe oublié ? » "
            "sur la page de connexion, avec votre produit LuxTrust) et appelez le helpdesk au "
            "(+352) 27 12 50 18 33.",
            "rien à faire",
        ),
        (
            "activation_otp",
            "quelqu'un détient le code d'activation de votre courrier : appelez sans attendre le "
            "helpdesk au (+352) 27 12 50 18 33, qui bloquera ce courrier",
            "rien à faire",
        ),
    ],
)
def test_the_notice_advises_what_the_failed_factor_means(
    settings: Any, factor: str, advice: str, absent: str
) -> None:
    from esante.accounts.delivery import attack_notice_deliver

    attack_notice_deliver(address=VICTIM_EMAIL, factor=factor, at=START)
    (notice,) = notices(settings)
    text = " ".join(body(notice).split())
    assert advice in text and absent not in text


def test_regression_a_failed_login_code_tells_the_professional_to_change_the_password(
    victim: Professional, settings: Any
) -> None:
    """On the reviewed branch the notice after wrong one-time codes said there was nothing to do,
    while whoever typed them had passed the password."""
    attacker = client_from(ATTACKER)
    with freeze_time(START):
        password(attacker, PASSWORD)
        for code in ("000001", "000002", "000003"):
            attacker.post(CODE, {"code": code})
    (notice,) = notices(settings)
    text = " ".join(body(notice).split())
    assert "quelqu'un connaît votre mot de passe : changez-le sans attendre" in text
    assert "(+352) 27 12 50 18 33" in text and "rien à faire" not in text
