"""The dispensing rules, as plain functions (durations configurable in settings).

* ``ESANTE_PRESCRIPTION_VALIDITY_MONTHS`` (default 3): a prescription is dispensed for the first
  time within this many months of its date;
* ``ESANTE_DISPENSATION_SERIES_MONTHS`` (default 6): successive deliveries of one prescription
  fall within this many months of the first;
* ``ESANTE_DISPENSATION_WITHDRAW_HOURS`` (default 24): the pharmacist who recorded a
  dispensation may withdraw it for this long.
"""

import calendar
import datetime

from django.conf import settings
from django.utils import timezone

DEFAULT_VALIDITY_MONTHS = 3
DEFAULT_SERIES_MONTHS = 6
DEFAULT_WITHDRAW_HOURS = 24


def validity_months() -> int:
    return int(getattr(settings, "ESANTE_PRESCRIPTION_VALIDITY_MONTHS", DEFAULT_VALIDITY_MONTHS))


def series_months() -> int:
    return int(getattr(settings, "ESANTE_DISPENSATION_SERIES_MONTHS", DEFAULT_SERIES_MONTHS))


def withdraw_hours() -> int:
    return int(getattr(settings, "ESANTE_DISPENSATION_WITHDRAW_HOURS", DEFAULT_WITHDRAW_HOURS))


def add_months(moment: datetime.datetime, months: int) -> datetime.datetime:
    """The same wall-clock time ``months`` calendar months later (Luxembourg time), clamped to the
    month's last day: 30 November + 3 months is 28 (or 29) February."""
    local = timezone.localtime(moment)
    month_index = local.month - 1 + months
    year, month = local.year + month_index // 12, month_index % 12 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    return local.replace(year=year, month=month, day=day)


def prescription_valid_until(prescribed_at: datetime.datetime) -> datetime.datetime:
    """A prescription is valid 3 months from its date: the first delivery happens before this."""
    return add_months(prescribed_at, validity_months())


def series_valid_until(first_dispensed_at: datetime.datetime) -> datetime.datetime:
    """Successive deliveries of one prescription fall within 6 months of the first delivery."""
    return add_months(first_dispensed_at, series_months())


def withdrawal_possible_until(dispensed_at: datetime.datetime) -> datetime.datetime:
    """The recording pharmacist may withdraw a dispensation for 24 hours (configurable)."""
    return dispensed_at + datetime.timedelta(hours=withdraw_hours())
