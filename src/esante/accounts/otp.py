"""One contract for every one-time code: login devices and the activation's channel check.

A code is 6 digits, valid ``ESANTE_OTP_VALID_SECONDS`` (5 minutes), stored only as a keyed digest,
single use (cleared on success), and dead after ``ESANTE_OTP_MAX_TRIES`` (3) wrong tries. A new
code may be requested only after ``ESANTE_OTP_RESEND_SECONDS``. Callers lock the device row
(``select_for_update``) around ``otp_check`` so two concurrent tries cannot both use one code.
"""

import dataclasses
import datetime
import enum
from typing import Any, TypeAlias

from django.conf import settings
from django.utils import timezone
from django_otp.plugins.otp_email.models import EmailDevice

from .codes import digests_match, one_time_code_digest, one_time_code_new
from .models import SmsDevice

LoginDevice: TypeAlias = EmailDevice | SmsDevice


class OtpCheck(enum.Enum):
    ACCEPTED = "accepted"
    WRONG = "wrong"
    EXPIRED = "expired"  # no live code: expired, already used, or killed by wrong tries


def device_scope(device: Any) -> str:
    return f"{device._meta.label_lower}:{device.pk}"


def resend_available_at(device: LoginDevice) -> datetime.datetime | None:
    """When a new code may be sent, or None when it may be sent now."""
    last = device.last_generated_timestamp
    if last is None:
        return None
    ready = last + datetime.timedelta(seconds=settings.ESANTE_OTP_RESEND_SECONDS)
    return ready if ready > timezone.now() else None


def otp_issue(device: LoginDevice) -> str:
    """Generates a new code for the device, stores its digest and returns the code to deliver."""
    now = timezone.now()
    code = one_time_code_new()
    device.token = one_time_code_digest(device_scope(device), code)
    device.valid_until = now + datetime.timedelta(seconds=settings.ESANTE_OTP_VALID_SECONDS)
    device.throttling_failure_count = 0
    device.throttling_failure_timestamp = None
    device.last_generated_timestamp = now
    device.save()
    return code


@dataclasses.dataclass(frozen=True)
class OtpVerdict:
    """What one try does to a stored code: the result, the new failure count, and whether the
    stored code is now dead (consumed on success, killed by the last wrong try)."""

    result: OtpCheck
    failures: int
    spent: bool


def otp_verify(
    *, scope: str, digest: str | None, valid_until: datetime.datetime | None, failures: int, code: str
) -> OtpVerdict:
    """The one check of a one-time code, whatever holds it (a login device, the activation
    wizard): live and unexpired, compared in constant time, dead after the last wrong try."""
    if not digest or valid_until is None or timezone.now() >= valid_until:
        return OtpVerdict(OtpCheck.EXPIRED, failures, spent=False)
    if digests_match(digest, one_time_code_digest(scope, code)):
        return OtpVerdict(OtpCheck.ACCEPTED, 0, spent=True)
    failures += 1
    return OtpVerdict(OtpCheck.WRONG, failures, spent=failures >= settings.ESANTE_OTP_MAX_TRIES)


def otp_check(device: LoginDevice, code: str) -> OtpCheck:
    """Checks a code against the device's live code; consumes it on success, counts a failure."""
    verdict = otp_verify(
        scope=device_scope(device),
        digest=device.token,
        valid_until=device.valid_until,
        failures=device.throttling_failure_count,
        code=code,
    )
    if verdict.result is OtpCheck.EXPIRED:
        return verdict.result
    now = timezone.now()
    device.throttling_failure_count = verdict.failures
    if verdict.result is OtpCheck.ACCEPTED:
        device.last_used_at = now
    else:
        device.throttling_failure_timestamp = now
    if verdict.spent:
        device.token = None
        device.valid_until = now
    device.save()
    return verdict.result


def login_device_for(user: Any) -> LoginDevice | None:
    """The user's confirmed one-time-code device, locked for update: call it only inside the
    transaction that checks or issues a code (PostgreSQL refuses a row lock outside one)."""
    for model in (SmsDevice, EmailDevice):
        device = model.objects.select_for_update().filter(user=user, confirmed=True).order_by("-pk").first()
        if device is not None:
            return device
    return None


def login_device_channel(user: Any) -> str | None:
    """The channel ("sms" or "email") of the user's confirmed device, or None; a plain read for
    pages that only say where the code went (no lock, no transaction needed)."""
    if SmsDevice.objects.filter(user=user, confirmed=True).exists():
        return "sms"
    if EmailDevice.objects.filter(user=user, confirmed=True).exists():
        return "email"
    return None


def device_address(device: LoginDevice) -> tuple[str, str]:
    """(channel, address) where the device's codes go."""
    if isinstance(device, SmsDevice):
        return "sms", device.number
    return "email", device.email or device.user.email
