"""The Luxembourg national identification number ("matricule"), one module used everywhere.

Current form (since 2014), 13 digits::

    YYYYMMDD  birth date (a real calendar date)
    SSS       serial number
    L         Luhn check digit over the first 11 digits
    V         Verhoeff check digit over the same first 11 digits

Earlier form, 11 digits, still carried by some professionals: ``YYYYMMDD`` + 2-digit serial +
a modulo-11 check digit with weights 5,4,3,2,7,6,5,4,3,2. That form is accepted only where the
guide allows it: a professional's matricule ("Votre numéro de matricule (à 11 ou 13 chiffres)").
Patients always carry the 13-digit form.
"""

import datetime
import functools

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

_LEGACY_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
# Luhn: a doubled digit's digit sum. Verhoeff: the dihedral group D5's multiplication table,
# the position permutations and each element's inverse. Inlined (same results as python-stdnum,
# checked by the tests) because the patient import validates hundreds of thousands of numbers.
_LUHN_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)
_VERHOEFF_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_VERHOEFF_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)
_VERHOEFF_INVERSE = tuple(row.index(0) for row in _VERHOEFF_D)


def compact(value: str) -> str:
    """Removes the spaces, dots and dashes people type inside numbers."""
    return "".join(ch for ch in str(value) if ch not in " .-/\t")


def _check_birth_date(number: str) -> datetime.date:
    try:
        return datetime.date(int(number[0:4]), int(number[4:6]), int(number[6:8]))
    except ValueError:
        raise ValidationError(
            _("Le matricule ne commence pas par une date de naissance valide (AAAAMMJJ)."), code="date"
        ) from None


def _legacy_check_digit(first_ten: str) -> int | None:
    """Modulo-11 check digit of the 11-digit form; None when no digit can be valid (remainder 1)."""
    total = sum(int(d) * w for d, w in zip(first_ten, _LEGACY_WEIGHTS, strict=True))
    check = (11 - total % 11) % 11
    return None if check == 10 else check


def luhn_verhoeff_digits(first_eleven: str) -> str:
    """The two check digits of the 13-digit form for its first 11 digits (ASCII digits)."""
    digits = [ord(ch) - 48 for ch in reversed(first_eleven)]
    # The check digit goes to the right, so the payload's rightmost digit is doubled.
    luhn_total = sum(_LUHN_DOUBLED[d] for d in digits[::2]) + sum(digits[1::2])
    check = 0
    for position, digit in enumerate(digits, start=1):
        check = _VERHOEFF_D[check][_VERHOEFF_P[position % 8][digit]]
    return f"{-luhn_total % 10}{_VERHOEFF_INVERSE[check]}"


def validate_patient_matricule(value: str) -> str:
    """Returns the 13-digit matricule, or raises ValidationError saying in French what is wrong."""
    number = value if isinstance(value, str) and value.isdigit() else compact(value)
    if not (number.isascii() and number.isdigit()):
        raise ValidationError(_("Le matricule ne doit contenir que des chiffres."), code="digits")
    if len(number) != 13:
        raise ValidationError(
            _("Le matricule doit comporter 13 chiffres (%(length)d saisis)."),
            code="length",
            params={"length": len(number)},
        )
    _check_birth_date(number)
    if number[11:13] != luhn_verhoeff_digits(number[:11]):
        raise ValidationError(
            _("Les chiffres de contrôle du matricule sont incorrects : vérifiez la saisie."),
            code="check_digit",
        )
    return number


# The check digits of a 13-digit matricule in two halves, for the import's speed. The digits are
# read from the right: the serial (the three digits before the check digits) first, then the
# birth date. The Luhn sum is a sum of the two halves' parts; the Verhoeff state is a product in
# the group D5 (associative), so each half reduces to one element: a table holds the serials'
# (all 1,000), a cache the birth dates' (a population has some 45,000 distinct ones).
def _serial_part(serial: str) -> tuple[int, int]:
    digits = [ord(ch) - 48 for ch in reversed(serial)]
    luhn = _LUHN_DOUBLED[digits[0]] + digits[1] + _LUHN_DOUBLED[digits[2]]
    element = 0
    for position, digit in enumerate(digits, start=1):
        element = _VERHOEFF_D[element][_VERHOEFF_P[position % 8][digit]]
    return luhn, element


_SERIAL_PARTS = tuple(_serial_part(f"{serial:03d}") for serial in range(1000))
# The Verhoeff check digit's ASCII code for the serial's element and the date's.
_VERHOEFF_CHECK = tuple(
    bytes(48 + _VERHOEFF_INVERSE[_VERHOEFF_D[serial][date]] for date in range(10)) for serial in range(10)
)


@functools.lru_cache(maxsize=1 << 16)
def _date_part(first_eight: str) -> tuple[datetime.date, int, int] | None:
    """For the birth-date digits: the date, their Luhn sum and their Verhoeff element; None when
    the date is not a real one."""
    try:
        date = datetime.date(int(first_eight[0:4]), int(first_eight[4:6]), int(first_eight[6:8]))
    except ValueError:
        return None
    # Positions 4 to 11 from the right: digits 7 down to 0 of the date, the 4th one doubled first.
    digits = [ord(ch) - 48 for ch in reversed(first_eight)]
    luhn = sum(_LUHN_DOUBLED[d] for d in digits[1::2]) + sum(digits[::2])
    element = 0
    for position, digit in enumerate(digits, start=4):
        element = _VERHOEFF_D[element][_VERHOEFF_P[position % 8][digit]]
    return date, luhn, element


def patient_matricule_birth_date(value: str) -> datetime.date:
    """The birth date of a valid 13-digit patient matricule given as its 13 digits exactly (no
    spaces or dots: the import's form); raises the ValidationError of ``validate_patient_matricule``
    otherwise. The same verdict, at a fraction of its cost per number (see ``_date_part``)."""
    if len(value) == 13 and value.isascii() and value.isdigit():
        part = _date_part(value[:8])
        if part is not None:
            date, date_luhn, date_element = part
            serial_luhn, serial_element = _SERIAL_PARTS[int(value[8:11])]
            if (
                ord(value[11]) - 48 == -(serial_luhn + date_luhn) % 10
                and ord(value[12]) == _VERHOEFF_CHECK[serial_element][date_element]
            ):
                return date
    validate_patient_matricule(value)  # raises, saying what is wrong
    raise ValidationError(_("Le matricule ne doit contenir que des chiffres."), code="digits")


def validate_professional_matricule(value: str) -> str:
    """A professional's matricule: the 13-digit form, or the 11-digit form issued before 2014."""
    number = compact(value)
    if not number.isdigit():
        raise ValidationError(_("Le matricule ne doit contenir que des chiffres."), code="digits")
    if len(number) == 13:
        return validate_patient_matricule(number)
    if len(number) != 11:
        raise ValidationError(
            _("Le matricule doit comporter 11 ou 13 chiffres (%(length)d saisis)."),
            code="length",
            params={"length": len(number)},
        )
    _check_birth_date(number)
    expected = _legacy_check_digit(number[:10])
    if expected is None or int(number[10]) != expected:
        raise ValidationError(
            _("Le chiffre de contrôle du matricule est incorrect : vérifiez la saisie."), code="check_digit"
        )
    return number


def make_patient_matricule(birth_date: datetime.date, serial: int) -> str:
    """Builds a valid 13-digit matricule (demo data, tests, benchmarks)."""
    first = f"{birth_date:%Y%m%d}{serial:03d}"
    return first + luhn_verhoeff_digits(first)


def make_legacy_matricule(birth_date: datetime.date, serial: int) -> str | None:
    """Builds a valid 11-digit matricule, or None when that serial has no valid check digit."""
    first = f"{birth_date:%Y%m%d}{serial:02d}"
    check = _legacy_check_digit(first)
    return None if check is None else first + str(check)


def birth_date_of(matricule: str) -> datetime.date:
    return _check_birth_date(matricule)
