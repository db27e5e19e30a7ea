"""The failure counters' keys and their operator side: IPv6 counted by /64, the helpdesk unlock
lifting every counter of an account, an operator lifting a network's limit (admin action and
``esante purge_throttles --lift-address``), and the purge of counters nobody needs any more."""

import datetime
import io
from typing import Any

import pytest
from django.core.management import call_command
from django.db import transaction
from django.test import Client
from django.urls import reverse
from freezegun import freeze_time

from esante.accounts.login import login_code, login_password
from esante.accounts.models import LoginThrottle, Professional, User
from esante.accounts.services import login_throttles_purge, login_unlock
from esante.accounts.throttling import client_network, pair_failure, pair_key
from esante.audit.models import AuditEvent
from tests.conftest import otp_verified_login

from .conftest import PASSWORD

pytestmark = pytest.mark.django_db

MATRICULE = "19800101002"
START = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8::10", "2001:db8::/64"),
        ("2001:db8:0:0:ffff:1:2:3", "2001:db8::/64"),
        ("2001:DB8:0:1::10", "2001:db8:0:1::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("not-an-address", "not-an-address"),
        ("", None),
        (None, None),
    ],
)
def test_client_network_counts_ipv4_per_address_and_ipv6_per_64(address: Any, network: Any) -> None:
    assert client_network(address) == network


def test_pair_key_uses_the_network() -> None:
    assert pair_key(MATRICULE, "2001:db8::abcd") == f"{MATRICULE}|2001:db8::/64"
    assert pair_key(MATRICULE, "::ffff:198.51.100.10") == f"{MATRICULE}|198.51.100.10"
    assert pair_key("", "192.0.2.1") is None and pair_key(MATRICULE, None) is None


def test_regression_ipv6_rotation_within_one_64_is_delayed(active: Professional) -> None:
    """On the reviewed branch ten addresses of one /64, two tries each, were never delayed."""
    with freeze_time(START):
        messages = [
            login_password(
                matricule=MATRICULE, password="bad", client_address=f"2001:db8::{n + 10:x}"
            ).message
            for n in range(4)
        ]
        assert messages[:2] == ["Matricule ou mot de passe incorrect."] * 2
        assert "depuis votre adresse. Réessayez après le 02/03/2026 à 10:01:00" in messages[2]
        # The fourth address of the /64 is refused unevaluated, as the third's next try would be.
        assert "Réessayez après le 02/03/2026 à 10:01:00" in messages[3]
        # Another /64 and the IPv4 victim are not affected.
        other = login_password(matricule=MATRICULE, password=PASSWORD, client_address="2001:db8:0:1::1")
        assert other.ok
    (pair,) = LoginThrottle.objects.filter(scope="account_address", key__endswith="2001:db8::/64")
    assert pair.failures == 3
    assert [e.client_address for e in AuditEvent.objects.filter(action="accounts.login.delay")] == [
        "2001:db8::c"
    ]
    # The full address stays in the trail: only the counting is per /64.
    refused = AuditEvent.objects.filter(action="accounts.login.password", outcome="refused").get()
    assert refused.client_address == "2001:db8::d" and refused.details == {"reason": "delayed"}


def test_ipv4_mapped_ipv6_counts_as_the_ipv4_address(active: Professional) -> None:
    for address in ("192.0.2.9", "::ffff:192.0.2.9", "192.0.2.9"):
        outcome = login_password(matricule=MATRICULE, password="bad", client_address=address)
    assert outcome.delayed_until is not None
    assert LoginThrottle.objects.get(scope="account_address").key == f"{MATRICULE}|192.0.2.9"


def test_network_limit_counts_ipv6_per_64(db: Any, settings: Any) -> None:
    settings.ESANTE_ADDRESS_MAX_FAILURES_PER_HOUR = 3
    for number in range(3):
        login_password(
            matricule=f"1985060203{number}", password="bad", client_address=f"2001:db8::{number + 1:x}"
        )
    assert LoginThrottle.objects.get(scope="address").key == "2001:db8::/64"
    assert AuditEvent.objects.get(action="accounts.address.lock").object_id == "2001:db8::/64"


# --- helpdesk unlock ---------------------------------------------------------------------------------


def test_helpdesk_unlock_lifts_the_lock_every_pair_delay_and_the_lock_count(
    active: Professional, settings: Any
) -> None:
    """On the reviewed branch the unlock kept ``lock_count`` (the next lock lasted twice as long)
    and left the activation delays of the account running."""
    settings.ESANTE_ACCOUNT_LOCK_AFTER_FAILURES = 6
    with freeze_time(START) as clock:
        for round_ in range(2):  # two locks: the second lasts 30 minutes
            for _ in range(3):  # a network delayed on the account
                login_password(matricule=MATRICULE, password="bad", client_address=f"198.51.100.{round_ + 1}")
            for number in range(3):
                login_password(
                    matricule=MATRICULE, password="bad", client_address=f"192.0.2.{round_ * 10 + number + 1}"
                )
            if round_ == 0:
                clock.tick(datetime.timedelta(minutes=16))
        with transaction.atomic():  # an activation attacker's network, delayed on this matricule
            for _ in range(3):
                pair_failure(LoginThrottle.Scope.ACTIVATION_PAIR, MATRICULE, "203.0.113.66")
        account = LoginThrottle.objects.get(scope="account", key=MATRICULE)
        assert account.lock_count == 2
        assert account.locked_until - datetime.datetime.now(datetime.UTC) == datetime.timedelta(minutes=30)
        pairs = LoginThrottle.objects.filter(key__startswith=f"{MATRICULE}|", failures__gt=0).count()
        assert (
            LoginThrottle.objects.filter(key__startswith=f"{MATRICULE}|", locked_until__gt=START).count() == 3
        )

        login_unlock(professional=active, actor_label="helpdesk:marie")

        account.refresh_from_db()
        assert (account.failures, account.lock_count, account.locked_until) == (0, 0, None)
        assert not LoginThrottle.objects.filter(
            key__startswith=MATRICULE, locked_until__isnull=False
        ).exists()
        assert not LoginThrottle.objects.filter(key__startswith=f"{MATRICULE}|", failures__gt=0).exists()
        assert AuditEvent.objects.get(action="accounts.login.unlock").details == {"delays_lifted": pairs}
        # The next lock is a first one again: 15 minutes, not 60.
        for number in range(6):
            outcome = login_password(matricule=MATRICULE, password="bad", client_address=f"10.0.9.{number}")
        assert outcome.locked_until is not None
        assert outcome.locked_until - datetime.datetime.now(datetime.UTC) == datetime.timedelta(minutes=15)


# --- operator: a network's limit -----------------------------------------------------------------------


def _spray(address: str, count: int = 20) -> None:
    for number in range(count):
        login_password(matricule=f"19700101{number:05d}", password="x", client_address=address)


def test_operator_lifts_a_network_limit_in_the_admin(client: Client, active: Professional) -> None:
    _spray("192.0.2.50")
    row = LoginThrottle.objects.get(scope="address", key="192.0.2.50")
    assert row.locked_until is not None
    operator = User.objects.create_superuser(username="operateur", password=None)
    otp_verified_login(client, operator)
    changelist = reverse("admin:accounts_loginthrottle_changelist")
    assert client.get(changelist).status_code == 200
    response = client.post(changelist, {"action": "lift", "_selected_action": [row.pk]})
    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.failures, row.locked_until) == (0, None)
    lifted = AuditEvent.objects.get(action="accounts.throttle.lift")
    assert (lifted.actor_label, lifted.object_type, lifted.object_id) == (
        "operator:operateur",
        "address",
        "192.0.2.50",
    )
    assert lifted.details["failures"] == 20
    assert login_password(matricule=MATRICULE, password=PASSWORD, client_address="192.0.2.50").ok
    # An account is not lifted here (its page has « Lever le blocage de connexion »).
    account = LoginThrottle.objects.get(scope="account", key=MATRICULE)
    client.post(changelist, {"action": "lift", "_selected_action": [account.pk]})
    assert AuditEvent.objects.filter(action="accounts.throttle.lift").count() == 1


def test_purge_throttles_lifts_an_address_and_removes_what_nobody_needs(active: Professional) -> None:
    with freeze_time(START - datetime.timedelta(days=40)):
        login_password(matricule="19700101000", password="x", client_address="198.51.100.1")  # stale
        assert login_password(matricule=MATRICULE, password=PASSWORD, client_address="198.51.100.2").ok
        login_code(user=active.user, code="000000", client_address="198.51.100.2")  # stale failure
    # A known network (a success within KNOWN_NETWORK_DAYS) stays known.
    LoginThrottle.objects.filter(key=f"{MATRICULE}|198.51.100.2").update(succeeded_at=START)
    with freeze_time(START):
        _spray("2001:db8::1")
        out = io.StringIO()
        call_command("purge_throttles", "--lift-address", "2001:db8::99", stdout=out)
    assert "limite levée : 2001:db8::/64" in out.getvalue()
    assert LoginThrottle.objects.get(scope="address", key="2001:db8::/64").locked_until is None
    remaining = set(LoginThrottle.objects.values_list("scope", "key"))
    assert ("account", "19700101000") not in remaining and ("address", "198.51.100.1") not in remaining
    assert ("account_address", f"{MATRICULE}|198.51.100.2") in remaining
    assert ("address", "2001:db8::/64") in remaining  # touched today
    (purge,) = AuditEvent.objects.filter(action="accounts.throttle.purge")
    assert purge.details["deleted"] >= 3 and purge.details["older_than_days"] == 30
    with freeze_time(START):
        assert login_throttles_purge(older_than_days=30) == 0
