"""Failure counters for logins, activation codes and one-time codes, kept in the database
(``LoginThrottle``), and the e-mail telling a professional that their account is attacked.

Three counters, so that nobody can lock a professional out by typing their (guessable) matricule:

- **account and client network** (``PAIR`` for the password and the login code,
  ``ACTIVATION_PAIR`` for the activation code and the activation's one-time code):
  ``ESANTE_THROTTLE_FREE_FAILURES`` (3) failures are free, then each failure makes that network
  wait before its next try on that account: ``ESANTE_THROTTLE_DELAY_SECONDS`` (1 minute), doubling
  with every further failure, at most ``ESANTE_THROTTLE_MAX_DELAY_MINUTES`` (an hour). An attacker
  slows down only their own tries; the professional logging in from another address is not
  affected. A success from that network resets it, and marks it known (``succeeded_at``).
- **account** (``ACCOUNT``; for activation codes, the letter's ``failed_attempts``): the
  consecutive failures from every address. Only after ``ESANTE_ACCOUNT_LOCK_AFTER_FAILURES``
  (100, the most NIST SP 800-63B allows) is the password and code login locked as a whole, for
  ``ESANTE_ACCOUNT_LOCK_MINUTES`` doubling at each further lock (at most a day), or the letter
  blocked.
- **client network** (``ADDRESS``, ``ACTIVATION``): a coarse limit on one network trying many
  accounts (one guess each, which the pair counter never sees). ``ESANTE_ADDRESS_MAX_FAILURES_PER_HOUR``
  (20) failures within an hour are free; each further one delays the network's next try on an
  account it has never logged in to: 1 minute, doubling, at most an hour. A growing delay rather
  than a block until the hour is over, and never for an account already logged in to from that
  network (its pair row has ``succeeded_at``): a hospital's NAT address is shared by its staff, and
  an attacker behind it spraying random matricules must not lock the staff out. A plain read, not
  locked (locking would queue every login of that NAT address behind one row).

A "network" is the client's IPv4 address, or the /64 of an IPv6 address (``client_network``): one
IPv6 subscriber gets a whole /64 and could otherwise rotate addresses to escape every delay;
IPv4-mapped IPv6 addresses count as the IPv4 address.

The certificate login is refused by none of these counters (``login_certificate``): the
certificate cannot be guessed, the TLS verification of its key is the factor.

The professional is told by e-mail (``attack_notify``) the first time a network gets delayed on
their account and when the account is locked or the letter blocked, at most once every
``ESANTE_ATTACK_NOTICE_MINUTES``. The decision (``notified_at``) is taken in the attempt's
transaction; the mail is sent after its commit (``transaction.on_commit``), so no row lock and no
lock on the audit chain is held while a mail server answers (``EMAIL_TIMEOUT`` bounds the wait);
its delivery, or its failure, is traced in a transaction of its own afterwards.

Callers run these inside their own transaction, which also writes the attempt's audit event:
the counters and their trace commit or roll back together. Lock order, the same in every
service (else two attempts deadlock on PostgreSQL): the wizard row, the account's counter row
(``account_lock_check`` / ``account_hold``, *before* the credentials are evaluated), the pair's
row, the letter, the network's row, and the audit chain head last — every counter is written
before the first ``audit_record`` of the attempt. Concurrent attempts on one account queue on the
account row, each sees the failures of those before it, so at most ``ESANTE_THROTTLE_FREE_FAILURES``
wrong credentials from one network, and ``ESANTE_ACCOUNT_LOCK_AFTER_FAILURES`` from all, are
evaluated before the delay or the lock refuses the rest (tests/accounts/test_lock_concurrency.py).

Why not django-axes (it was pinned, never wired, and is no longer a dependency): its model is one
failure limit and one cool-off for every lockout parameter combination (``AXES_FAILURE_LIMIT``,
``AXES_COOLOFF_TIME``), so it cannot say "delay this account from this address after 3 failures,
doubling" and "lock this account from every address only after 100" at the same time; its
cool-off is a fixed time, not a delay growing with the failures. It counts what goes through
Django's ``authenticate()`` (its backend and the ``user_login_failed`` signal, with the request):
activation codes (matricule + letter code) and one-time codes never do, so they would need
counters of their own anyway — two mechanisms for one rule. And it checks the lock (``is_allowed``,
a plain read before ``authenticate``) apart from recording the failure (after it, in the signal):
concurrent wrong passwords all pass the check before any is counted, which is the race the account
row lock here closes. Its audit hooks (signals) are replaced by events written in the attempt's
own transaction, as every other action of the platform.
"""

import datetime
import ipaddress
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q
from django.utils import formats, timezone
from django.utils.translation import gettext, gettext_noop

from esante.audit.models import AuditEvent

from .models import LoginThrottle

REFUSED = AuditEvent.Outcome.REFUSED
Scope = LoginThrottle.Scope

# An (account, network) pair that logged in within this time is exempt from the network's limit.
KNOWN_NETWORK_DAYS = 90

# Shown with an account lock on the password and code login.
CERTIFICATE_STAYS_OPEN = gettext_noop(
    "La connexion avec votre produit LuxTrust (« Connexion ») reste possible."
)


def _now() -> datetime.datetime:
    return timezone.now()


def lock_message(until: datetime.datetime) -> str:
    """The message for a lock, saying when to retry (Luxembourg time), in the active language:
    "... Réessayez après le 02/03/2026 à 10:15 (heure de Luxembourg) ..." in French."""
    local = timezone.localtime(until)
    return gettext(
        "Trop de tentatives infructueuses : l'accès est bloqué. Réessayez après le %(date)s à "
        "%(time)s (heure de Luxembourg) ou contactez le helpdesk."
    ) % {
        "date": formats.date_format(local, "SHORT_DATE_FORMAT"),
        "time": formats.time_format(local, "TIME_FORMAT"),
    }


def account_lock_message(until: datetime.datetime) -> str:
    """An account lock of the password and code login: when to retry, and that the certificate
    login stays open."""
    return f"{lock_message(until)} {gettext(CERTIFICATE_STAYS_OPEN)}"


def delay_message(until: datetime.datetime) -> str:
    """The message for a delay of one address on one account, to the second (delays are short):
    "... Réessayez après le 02/03/2026 à 10:01:30 (heure de Luxembourg)." in French."""
    local = timezone.localtime(until)
    return gettext(
        "Trop de tentatives infructueuses pour ce compte depuis votre adresse. Réessayez après le "
        "%(date)s à %(time)s (heure de Luxembourg)."
    ) % {
        "date": formats.date_format(local, "SHORT_DATE_FORMAT"),
        "time": formats.time_format(local, "H:i:s"),
    }


def _row(scope: str, key: str) -> LoginThrottle:
    """The counter row, created if missing, locked until the end of the transaction."""
    # INSERT ... ON CONFLICT DO NOTHING: a concurrent creator makes this wait for its commit
    # instead of failing, and no savepoint is needed.
    LoginThrottle.objects.bulk_create([LoginThrottle(scope=scope, key=key)], ignore_conflicts=True)
    return LoginThrottle.objects.select_for_update().get(scope=scope, key=key)


def client_network(address: str | None) -> str | None:
    """What the counters count a client address as: an IPv4 address itself, an IPv6 address's
    /64 (``2001:db8::/64``: one subscriber's allocation), an IPv4-mapped IPv6 address as its IPv4
    address. Anything else (not an IP address) as given, cut to 50 characters; None without one."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return address[:50]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def pair_key(account: str, address: str | None) -> str | None:
    """The key of an (account, client network) counter, or None without both."""
    network = client_network(address)
    if not account or not network:
        return None
    return f"{account[:13]}|{network}"


# --- account ---------------------------------------------------------------------------------------


def account_hold(key: str) -> LoginThrottle:
    """Locks the account's counter row (creating it) until the end of the transaction: the first
    row an attempt on this account locks, so that every service takes its locks in one order."""
    return _row(Scope.ACCOUNT, key)


def account_lock_check(key: str) -> datetime.datetime | None:
    """Locks the account's counter row (creating it) and returns the end of its lock, or None
    when it may try now. Call inside the attempt's transaction, before evaluating credentials."""
    row = account_hold(key)
    if row.locked_until is not None and row.locked_until > _now():
        return row.locked_until
    return None


def account_failure(key: str) -> datetime.datetime | None:
    """Counts a failure on an account (any address); returns the lock's end when this failure
    locks it (after ``ESANTE_ACCOUNT_LOCK_AFTER_FAILURES`` consecutive failures)."""
    row = _row(Scope.ACCOUNT, key)
    row.failures += 1
    locked = None
    if row.failures >= settings.ESANTE_ACCOUNT_LOCK_AFTER_FAILURES:
        row.lock_count += 1
        # Doubling, capped at a day: a lock is never permanent, even for a long-targeted account.
        minutes = min(settings.ESANTE_ACCOUNT_LOCK_MINUTES * 2 ** min(row.lock_count - 1, 16), 24 * 60)
        locked = row.locked_until = _now() + datetime.timedelta(minutes=minutes)
        row.failures = 0
    row.save()
    return locked


def account_success(key: str) -> None:
    """A full login: the account's consecutive failures start again from zero."""
    LoginThrottle.objects.filter(scope=Scope.ACCOUNT, key=key).update(
        failures=0, lock_count=0, locked_until=None
    )


# --- account and client network ----------------------------------------------------------------


@dataclass
class Delay:
    """A delay imposed on one address for one account by a failure; ``first`` when it is the
    first delay of that pair since its last success (the professional is told then)."""

    until: datetime.datetime
    first: bool


def pair_delay_check(scope: str, account: str, address: str | None) -> datetime.datetime | None:
    """Locks the (account, network) counter row and returns the end of its delay, or None when it
    may try now. Call after ``account_lock_check`` (same order everywhere: no deadlock)."""
    key = pair_key(account, address)
    if key is None:
        return None
    row = _row(scope, key)
    if row.locked_until is not None and row.locked_until > _now():
        return row.locked_until
    return None


def pair_known(scope: str, account: str, address: str | None) -> bool:
    """Whether this account logged in (or passed this activation step) from this network within
    ``KNOWN_NETWORK_DAYS``: such a pair is exempt from the network's coarse limit."""
    key = pair_key(account, address)
    if key is None:
        return False
    since = _now() - datetime.timedelta(days=KNOWN_NETWORK_DAYS)
    return LoginThrottle.objects.filter(scope=scope, key=key, succeeded_at__gte=since).exists()


def pair_failure(scope: str, account: str, address: str | None) -> Delay | None:
    """Counts a failure of one network on one account; returns the delay it imposes, if any:
    none for the first ``ESANTE_THROTTLE_FREE_FAILURES - 1`` failures, then 1 minute, 2, 4, ...
    up to ``ESANTE_THROTTLE_MAX_DELAY_MINUTES``."""
    key = pair_key(account, address)
    if key is None:
        return None
    row = _row(scope, key)
    row.failures += 1
    delay = None
    beyond = row.failures - settings.ESANTE_THROTTLE_FREE_FAILURES
    if beyond >= 0:
        seconds = min(
            settings.ESANTE_THROTTLE_DELAY_SECONDS * 2 ** min(beyond, 20),
            settings.ESANTE_THROTTLE_MAX_DELAY_MINUTES * 60,
        )
        row.lock_count += 1
        row.locked_until = _now() + datetime.timedelta(seconds=seconds)
        delay = Delay(until=row.locked_until, first=row.lock_count == 1)
    row.save()
    return delay


def pair_success(scope: str, account: str, address: str | None) -> None:
    """A success from this network on this account: its failures start again from zero, and the
    network is known for this account (exempt from the network's coarse limit)."""
    key = pair_key(account, address)
    if key is None:
        return
    row = _row(scope, key)
    row.failures, row.lock_count, row.locked_until, row.succeeded_at = 0, 0, None, _now()
    row.save()


def account_pairs_reset(scope: str, account: str) -> int:
    """Lifts every network's delay on this account (helpdesk); returns how many there were."""
    return LoginThrottle.objects.filter(
        Q(failures__gt=0) | Q(locked_until__isnull=False),
        scope=scope,
        key__startswith=f"{account[:13]}|",
    ).update(failures=0, lock_count=0, locked_until=None)


# --- client network ----------------------------------------------------------------------------------


def throttle_locked_until(
    scope: str, key: str | None, *, account: str = "", pair_scope: str = ""
) -> datetime.datetime | None:
    """The end of the delay on this client address's network, or None when it may try now: also
    None when ``account`` logged in from that network before (``pair_known`` in ``pair_scope``).

    A plain read, not locked: the address limit is a coarse rate limit (locking would queue every
    login behind one hospital's NAT address). Accounts use ``account_lock_check``."""
    network = client_network(key)
    if not network:
        return None
    row = LoginThrottle.objects.filter(scope=scope, key=network).first()
    if row is None or row.locked_until is None or row.locked_until <= _now():
        return None
    if account and pair_scope and pair_known(pair_scope, account, key):
        return None
    return row.locked_until


def address_failure(scope: str, address: str | None) -> datetime.datetime | None:
    """Counts a failure from a client network; returns the delay it imposes, if any: none for the
    first ``ESANTE_ADDRESS_MAX_FAILURES_PER_HOUR - 1`` within an hour, then 1 minute
    (``ESANTE_THROTTLE_DELAY_SECONDS``), doubling with each further failure, at most
    ``ESANTE_THROTTLE_MAX_DELAY_MINUTES``. The count starts again an hour after its first failure."""
    network = client_network(address)
    if not network:
        return None
    row = _row(scope, network)
    now = _now()
    if row.window_started_at is None or now - row.window_started_at >= datetime.timedelta(hours=1):
        row.window_started_at, row.failures = now, 0
    row.failures += 1
    locked = None
    beyond = row.failures - settings.ESANTE_ADDRESS_MAX_FAILURES_PER_HOUR
    if beyond >= 0:
        seconds = min(
            settings.ESANTE_THROTTLE_DELAY_SECONDS * 2 ** min(beyond, 20),
            settings.ESANTE_THROTTLE_MAX_DELAY_MINUTES * 60,
        )
        locked = row.locked_until = now + datetime.timedelta(seconds=seconds)
    row.save()
    return locked
