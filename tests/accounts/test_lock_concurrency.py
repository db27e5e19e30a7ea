"""The account lock under real concurrency (PostgreSQL): wrong passwords sent at once on one account.

Each attempt locks the account's counter row before the password is checked, so the attempts
queue: the first ``ESANTE_LOCK_AFTER_FAILURES`` are evaluated, the last of them locks the
account, and every later one is refused as locked without its password being looked at.
"""

import threading
from typing import Any

import pytest
from django.contrib.auth.hashers import make_password
from django.db import connection, connections

from esante.accounts.models import LoginThrottle, User
from esante.accounts.services import LoginOutcome, login_password
from esante.audit.models import AuditEvent

from .conftest import make_active

ATTEMPTS = 12
MATRICULE = "19800101002"


def test_concurrent_wrong_passwords_evaluate_only_the_configured_number(
    committed_db: None, settings: Any
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks under real concurrency: PostgreSQL only (SQLite serialises writers)")
    allowed = settings.ESANTE_LOCK_AFTER_FAILURES
    assert ATTEMPTS > 2 * allowed  # without the row lock, a second lock would be taken too
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
                matricule=MATRICULE, password=f"wrong-{number}", client_address=f"192.0.2.{number + 1}"
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
    events = AuditEvent.objects.filter(action="accounts.login.password")
    evaluated = events.filter(outcome="failure", details__reason="bad_credentials").count()
    locked = events.filter(outcome="refused", details__reason="locked").count()
    assert (evaluated, locked) == (allowed, ATTEMPTS - allowed)
    assert AuditEvent.objects.filter(action="accounts.login.lock").count() == 1
    row = LoginThrottle.objects.get(scope="account", key=MATRICULE)
    assert (row.lock_count, row.failures) == (1, 0) and row.locked_until is not None
    assert sum(o.locked_until is not None for o in outcomes) == ATTEMPTS - allowed + 1


@pytest.mark.django_db
def test_an_attempt_on_a_locked_account_is_refused_before_its_password_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from esante.accounts import services

    make_active(matricule=MATRICULE, last_name="Schmit", first_name="Luc", email="luc.schmit@pharma.lu")
    for _ in range(5):
        login_password(matricule=MATRICULE, password="wrong", client_address="192.0.2.1")
    checked: list[str] = []
    monkeypatch.setattr(services, "authenticate", lambda **kwargs: checked.append("x"))
    outcome = login_password(matricule=MATRICULE, password="wrong", client_address="192.0.2.2")
    assert outcome.locked_until is not None and checked == []
    # Also makes this module runnable alone: pytest-django sets up the test database only when a
    # collected test is marked ``django_db``, and ``committed_db`` relies on that set-up.
