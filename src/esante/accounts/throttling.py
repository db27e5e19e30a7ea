"""Failure counters for logins and activation codes, kept in the database (``LoginThrottle``).

Callers run these inside their own transaction, which also writes the attempt's audit event:
the counter and its trace commit or roll back together. Rows are locked while counted.

An account's lock is checked with ``account_lock_check``, which locks the account's row *before*
the credentials are evaluated and keeps it locked until the transaction ends: concurrent attempts
on one account queue there, each sees the failures of those before it, and at most
``ESANTE_LOCK_AFTER_FAILURES`` wrong credentials are evaluated before the lock refuses the rest.
"""

import datetime
from typing import Any

from django.conf import settings
from django.utils import formats, timezone
from django.utils.translation import gettext

from esante.audit.catalogue import AuditAction
from esante.audit.models import AuditEvent
from esante.audit.services import audit_record

from .models import LoginThrottle

REFUSED = AuditEvent.Outcome.REFUSED


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


def _row(scope: str, key: str) -> LoginThrottle:
    """The counter row, created if missing, locked until the end of the transaction."""
    # INSERT ... ON CONFLICT DO NOTHING: a concurrent creator makes this wait for its commit
    # instead of failing, and no savepoint is needed.
    LoginThrottle.objects.bulk_create([LoginThrottle(scope=scope, key=key)], ignore_conflicts=True)
    return LoginThrottle.objects.select_for_update().get(scope=scope, key=key)


def account_lock_check(key: str) -> datetime.datetime | None:
    """Locks the account's counter row (creating it) and returns the end of its lock, or None
    when it may try now. Call inside the attempt's transaction, before evaluating credentials."""
    row = _row(LoginThrottle.Scope.ACCOUNT, key)
    if row.locked_until is not None and row.locked_until > _now():
        return row.locked_until
    return None


def throttle_locked_until(scope: str, key: str | None) -> datetime.datetime | None:
    """The end of the lock on this account or address, or None when it may try now.

    A plain read, not locked: for client addresses, whose limit is a coarse rate limit (locking
    would queue every login behind one hospital's NAT address). Accounts use
    ``account_lock_check``."""
    if not key:
        return None
    row = LoginThrottle.objects.filter(scope=scope, key=key).first()
    if row is not None and row.locked_until is not None and row.locked_until > _now():
        return row.locked_until
    return None


def account_failure(key: str) -> datetime.datetime | None:
    """Counts a failure on an account; returns the lock's end when this failure locks it."""
    row = _row(LoginThrottle.Scope.ACCOUNT, key)
    row.failures += 1
    locked = None
    if row.failures >= settings.ESANTE_LOCK_AFTER_FAILURES:
        row.lock_count += 1
        # Doubling, capped at a day: a lock is never permanent, even for a long-targeted account.
        minutes = min(settings.ESANTE_LOCK_MINUTES * 2 ** min(row.lock_count - 1, 16), 24 * 60)
        locked = row.locked_until = _now() + datetime.timedelta(minutes=minutes)
        row.failures = 0
    row.save()
    return locked


def address_failure(scope: str, address: str | None) -> datetime.datetime | None:
    """Counts a failure from a client address; 20 within the hour block it to the hour's end."""
    if not address:
        return None
    row = _row(scope, address)
    now = _now()
    if row.window_started_at is None or now - row.window_started_at >= datetime.timedelta(hours=1):
        row.window_started_at, row.failures = now, 0
    row.failures += 1
    locked = None
    if row.failures >= settings.ESANTE_ADDRESS_MAX_FAILURES_PER_HOUR and (
        row.locked_until is None or row.locked_until <= now
    ):
        locked = row.locked_until = row.window_started_at + datetime.timedelta(hours=1)
    row.save()
    return locked


def account_success(key: str) -> None:
    LoginThrottle.objects.filter(scope=LoginThrottle.Scope.ACCOUNT, key=key).update(
        failures=0, lock_count=0, locked_until=None
    )


def audit_locks(
    *,
    user: Any,
    key: str,
    account_lock: datetime.datetime | None,
    address_lock: datetime.datetime | None,
    client_address: str | None,
    scope: str = LoginThrottle.Scope.ADDRESS,
) -> None:
    if account_lock is not None:
        audit_record(
            action=AuditAction.LOGIN_LOCK,
            outcome=REFUSED,
            actor=user,
            actor_label="" if user else key,
            object_type="account",
            object_id=key,
            client_address=client_address,
            details={"until": account_lock.isoformat()},
        )
    if address_lock is not None:
        audit_record(
            action=AuditAction.ADDRESS_LOCK,
            outcome=REFUSED,
            actor_label="anonymous",
            object_type=scope,
            object_id=client_address or "",
            client_address=client_address,
            details={"until": address_lock.isoformat()},
        )
