"""First factor: matricule and password."""

from collections.abc import Callable
from typing import Any

from django.contrib.auth import authenticate
from django.db import transaction
from django.utils.translation import gettext

from esante.audit.catalogue import AuditAction, AuditOutcome
from esante.patients.matricule import compact

from ..models import (
    LoginThrottle,
    User,
)
from ..otp import (
    login_device_for,
)
from ..services import FAILURE, NO_DEVICE, SUSPENDED, WRONG_LOGIN
from ..throttling import (
    account_lock_check,
    pair_delay_check,
    throttle_locked_until,
)
from ..tracing import account_trace
from .code import send_login_code
from .outcome import (
    LoginOutcome,
    delay_outcome,
    failure_trace,
    lock_outcome,
    locked_refusal,
    login_failure,
    professional_active,
)


def _password_step_refusal(*, key: str, client_address: str | None) -> LoginOutcome | None:
    """The checks before the password is read: the account locked, this network delayed on it,
    the network delayed as a whole (each refusal traced). Locks the account's counter row, then
    the pair's, until the end of the transaction."""
    account_lock = account_lock_check(key) if key else None
    if account_lock is not None:
        return locked_refusal(
            AuditAction.LOGIN_PASSWORD,
            account_lock,
            client_address=client_address,
            account=key,
            account_locked=True,
        )
    delayed = pair_delay_check(LoginThrottle.Scope.PAIR, key, client_address) if key else None
    if delayed is not None:
        return locked_refusal(
            AuditAction.LOGIN_PASSWORD,
            delayed,
            client_address=client_address,
            account=key,
            reason="delayed",
        )
    address_lock = throttle_locked_until(
        LoginThrottle.Scope.ADDRESS, client_address, account=key, pair_scope=LoginThrottle.Scope.PAIR
    )
    if address_lock is not None:
        return locked_refusal(
            AuditAction.LOGIN_PASSWORD,
            address_lock,
            client_address=client_address,
            account=key,
            reason="address_delayed",
        )
    return None


def _password_failure(*, user: Any, key: str, reason: str, client_address: str | None) -> LoginOutcome:
    """Wrong credentials or a suspended account: counted on the account, the pair and the
    network, traced, then what the count imposed."""
    # Whose account it is, when the matricule is known: the owner is told of the attack.
    owner = user or (User.objects.filter(username=key).first() if key else None)
    counted = login_failure(
        user=owner, key=key, factor="password", client_address=client_address, address_scope=True
    )
    account_trace(
        AuditAction.LOGIN_PASSWORD,
        key=key,
        user=user,
        client_address=client_address,
        outcome=FAILURE,
        reason=reason,
    )
    failure_trace(user=owner, key=key, client_address=client_address, counted=counted)
    new_account_lock, new_delay, new_address_lock = counted
    if new_account_lock or new_address_lock:
        until = max(d for d in (new_account_lock, new_address_lock) if d is not None)
        return lock_outcome(until, account=until == new_account_lock)
    if new_delay is not None:
        return delay_outcome(new_delay.until)
    if reason == "suspended":
        return LoginOutcome(ok=False, message=gettext(SUSPENDED))
    return LoginOutcome(ok=False, message=gettext(WRONG_LOGIN))


@transaction.atomic
def login_password(
    *,
    matricule: str,
    password: str,
    client_address: str | None,
    username_prefix: str = "",
    account_active: Callable[[Any], bool] = professional_active,
) -> LoginOutcome:
    """First factor: matricule and password. On success sends a code to the verified channel.

    Refused (and traced) when the account is locked, this network must wait before its next try
    on this account, or the network is delayed (unless this account logged in from it before);
    when the credentials are wrong (one message for unknown matricule and wrong password, and the
    same counting), the account is not active, or the code cannot be sent. Wrong credentials count
    on the account and network pair (delays after three), on the account (a lock only after
    ``ESANTE_ACCOUNT_LOCK_AFTER_FAILURES``) and on the network (coarse rate limit); the
    professional is told by e-mail (after the commit).

    The account's counter row, then the pair's, stay locked from the checks to the end of the
    transaction, so concurrent attempts on one account are evaluated one after the other and the
    delay or lock stops them after the configured number (the row lock is held for one password
    check). Every counter is written before the audit events, which come last.

    ``username_prefix`` and ``account_active`` serve the patients' portal: its accounts are
    ``patient:<matricule>`` and must be active patient accounts (``esante.espace``).
    """
    typed = compact(matricule)[:13]
    key = f"{username_prefix}{typed}" if typed else ""
    refused = _password_step_refusal(key=key, client_address=client_address)
    if refused is not None:
        return refused
    user = authenticate(username=key, password=password) if key else None
    if user is None or not account_active(user):
        reason = "bad_credentials" if user is None else "suspended"
        return _password_failure(user=user, key=key, reason=reason, client_address=client_address)
    device = login_device_for(user)
    if device is None:
        account_trace(
            AuditAction.LOGIN_PASSWORD, key=key, user=user, client_address=client_address, reason="no_device"
        )
        return LoginOutcome(ok=False, message=gettext(NO_DEVICE))
    sent = send_login_code(device=device, user=user, client_address=client_address)
    account_trace(
        AuditAction.LOGIN_PASSWORD,
        key=key,
        user=user,
        client_address=client_address,
        outcome=AuditOutcome.SUCCESS,
    )
    if not sent.ok:
        return sent
    return LoginOutcome(ok=True, user=user, device=device)
