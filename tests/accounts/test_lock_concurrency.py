"""The account lock and the address delay under real concurrency (PostgreSQL): wrong passwords
sent at once on one account.

Each attempt locks the account's counter row (then its address's) before the password is
checked, so the attempts queue: from many addresses the first ``ESANTE_ACCOUNT_LOCK_AFTER_FAILURES``
are evaluated, the last of them locks the account, and every later one is refused as locked;
from one address the first ``ESANTE_THROTTLE_FREE_FAILURES`` are evaluated and every later one is
refused as delayed — none of the refused has its password looked at.
"""

import threading
import time
from typing import Any

import pytest
from django.contrib.auth.hashers import make_password
from django.db import connection, connections

from esante.accounts.login import LoginOutcome, login_password
from esante.accounts.models import LoginThrottle, User
from esante.audit.models import AuditEvent

from .conftest import make_active

ATTEMPTS = 12
MATRICULE = "19800101002"


def _concurrent_wrong_passwords(settings: Any, address: Any) -> list[Any]:
    """ATTEMPTS wrong passwords on one account released at once; ``address(n)`` for attempt n."""
    # The platform's hasher: verification is slow, which is what opens the race window.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
    professional = make_active(
        matricule=MATRICULE, last_name="Schmit", first_name="Luc", email="luc.schmit@pharma.lu"
    )
    User.objects.filter(pk=professional.user_id).update(password=make_password("Tisane-de-camomille-42"))
    barrier = threading.Barrier(ATTEMPTS)
    outcomes: list[Any] = []
    lock = threading.Lock()

    def attempt(number: int) -> None:
        try:
            barrier.wait(timeout=30)
            result: Any = login_password(
                matricule=MATRICULE, password=f"wrong-{number}", client_address=address(number)
            )
        except Exception as error:  # reported by the assertions below
            result = error
        finally:
            connections.close_all()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(ATTEMPTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(outcomes) == ATTEMPTS and all(isinstance(o, LoginOutcome) for o in outcomes), outcomes
    assert not any(o.ok for o in outcomes)
    return outcomes


def test_concurrent_wrong_passwords_from_many_addresses_evaluate_only_the_account_limit(
    committed_db: None, settings: Any
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks under real concurrency: PostgreSQL only (SQLite serialises writers)")
    settings.ESANTE_ACCOUNT_LOCK_AFTER_FAILURES = allowed = 5  # 100 by default: fewer threads suffice
    assert ATTEMPTS > 2 * allowed  # without the row lock, a second lock would be taken too
    outcomes = _concurrent_wrong_passwords(settings, lambda n: f"192.0.2.{n + 1}")
    events = AuditEvent.objects.filter(action="accounts.login.password")
    evaluated = events.filter(outcome="failure", details__reason="bad_credentials").count()
    locked = events.filter(outcome="refused", details__reason="locked").count()
    assert (evaluated, locked) == (allowed, ATTEMPTS - allowed)
    assert AuditEvent.objects.filter(action="accounts.login.lock").count() == 1
    assert AuditEvent.objects.filter(action="accounts.login.delay").count() == 0  # one try per address
    row = LoginThrottle.objects.get(scope="account", key=MATRICULE)
    assert (row.lock_count, row.failures) == (1, 0) and row.locked_until is not None
    assert sum(o.locked_until is not None for o in outcomes) == ATTEMPTS - allowed + 1
    # One notice, at the lock.
    assert AuditEvent.objects.filter(action="accounts.attack.notify", outcome="success").count() == 1


def test_concurrent_wrong_passwords_from_one_address_evaluate_only_the_free_failures(
    committed_db: None, settings: Any
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks under real concurrency: PostgreSQL only (SQLite serialises writers)")
    allowed = settings.ESANTE_THROTTLE_FREE_FAILURES
    assert ATTEMPTS > 2 * allowed  # without the row lock, a second delay would be imposed too
    outcomes = _concurrent_wrong_passwords(settings, lambda n: "192.0.2.1")
    events = AuditEvent.objects.filter(action="accounts.login.password")
    evaluated = events.filter(outcome="failure", details__reason="bad_credentials").count()
    delayed = events.filter(outcome="refused", details__reason="delayed").count()
    assert (evaluated, delayed) == (allowed, ATTEMPTS - allowed)
    assert AuditEvent.objects.filter(action="accounts.login.delay").count() == 1
    assert AuditEvent.objects.filter(action="accounts.login.lock").count() == 0
    pair = LoginThrottle.objects.get(scope="account_address", key=f"{MATRICULE}|192.0.2.1")
    assert (pair.failures, pair.lock_count) == (allowed, 1)
    assert sum(o.delayed_until is not None for o in outcomes) == ATTEMPTS - allowed + 1
    assert LoginThrottle.objects.get(scope="account", key=MATRICULE).locked_until is None


@pytest.mark.django_db
def test_an_attempt_on_a_locked_account_or_delayed_address_is_refused_before_its_password_is_checked(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    from esante.accounts.login import password as password_step

    make_active(matricule=MATRICULE, last_name="Schmit", first_name="Luc", email="luc.schmit@pharma.lu")
    settings.ESANTE_ACCOUNT_LOCK_AFTER_FAILURES = 5
    for address in ["198.51.100.1"] * 3 + ["192.0.2.1", "192.0.2.2"]:  # a delay, then the lock
        login_password(matricule=MATRICULE, password="wrong", client_address=address)
    account_row = LoginThrottle.objects.filter(scope="account", key=MATRICULE)
    checked: list[str] = []
    monkeypatch.setattr(password_step, "authenticate", lambda **kwargs: checked.append("x"))
    outcome = login_password(matricule=MATRICULE, password="wrong", client_address="192.0.2.9")
    assert outcome.locked_until is not None and checked == []
    # An address that must wait is refused before its password is checked too.
    account_row.update(failures=0, locked_until=None)
    outcome = login_password(matricule=MATRICULE, password="wrong", client_address="198.51.100.1")
    assert outcome.delayed_until is not None and checked == []
    # Also makes this module runnable alone: pytest-django sets up the test database only when a
    # collected test is marked ``django_db``, and ``committed_db`` relies on that set-up.


def test_regression_activation_failure_and_login_take_their_locks_in_one_order(
    committed_db: None, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the reviewed branch an activation code failure locked the audit chain head (its trace)
    then the account's row (the notice), a password login the other way round: PostgreSQL
    answered the victim's right password with "deadlock detected". Now every service locks the
    account's and the pair's rows first and the chain head last."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks under real concurrency: PostgreSQL only (SQLite serialises writers)")
    from django.contrib.auth import authenticate

    from esante.accounts import activation
    from esante.accounts.login import password as password_step
    from esante.accounts.models import ActivationWizard

    make_active(matricule=MATRICULE, last_name="Schmit", first_name="Luc", email="luc.schmit@pharma.lu")
    wizard = activation.wizard_start(terms_version="1", client_address="203.0.113.66")
    ActivationWizard.objects.filter(pk=wizard.pk).update(step=ActivationWizard.Step.CODE)
    for _ in range(2):  # the next wrong code is the pair's first delay: a notice is due
        activation.wizard_code(
            wizard=wizard, matricule=MATRICULE, code="WRONG", client_address="203.0.113.66"
        )
    checking, attacker_waiting = threading.Event(), threading.Event()

    def slow_authenticate(**credentials: Any) -> Any:
        # The victim's password check (argon2 in production) while the attacker's step runs.
        checking.set()
        attacker_waiting.wait(timeout=10)
        time.sleep(1.5)  # beyond PostgreSQL's deadlock_timeout (1 s): a cycle would be found
        return authenticate(**credentials)

    monkeypatch.setattr(password_step, "authenticate", slow_authenticate)
    results: dict[str, Any] = {}

    def run(name: str, call: Any) -> None:
        try:
            results[name] = call()
        except Exception as error:  # reported by the assertions below
            results[name] = error
        finally:
            connections.close_all()

    victim = threading.Thread(
        target=run,
        args=(
            "victim",
            lambda: login_password(
                matricule=MATRICULE, password="Tisane-de-camomille-42", client_address="198.51.100.10"
            ),
        ),
    )
    victim.start()
    assert checking.wait(timeout=10)
    attacker = threading.Thread(
        target=run,
        args=(
            "attacker",
            lambda: activation.wizard_code(
                wizard=wizard, matricule=MATRICULE, code="WRONG", client_address="203.0.113.66"
            ),
        ),
    )
    attacker.start()
    time.sleep(0.3)  # the attacker is now queued behind the victim's locks
    attacker_waiting.set()
    victim.join(timeout=30)
    attacker.join(timeout=30)
    assert isinstance(results["victim"], LoginOutcome) and results["victim"].ok, results
    assert "Réessayez après" in results["attacker"].message, results
    # The notice went out after the attacker's commit, traced after its attempt.
    notice = AuditEvent.objects.get(action="accounts.attack.notify")
    attempt = AuditEvent.objects.filter(action="accounts.activation.code").order_by("-sequence").first()
    assert notice.outcome == "success" and attempt is not None and notice.sequence > attempt.sequence
    assert notice.details == {"factor": "activation_code", "trigger": "delay", "channel": "email"}
