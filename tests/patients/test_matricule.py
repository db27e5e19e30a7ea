import datetime

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from esante.patients.matricule import (
    luhn_verhoeff_digits,
    make_legacy_matricule,
    make_patient_matricule,
    patient_matricule_birth_date,
    validate_patient_matricule,
    validate_professional_matricule,
)

dates = st.dates(min_value=datetime.date(1900, 1, 1), max_value=datetime.date(2026, 12, 31))
serials = st.integers(min_value=0, max_value=999)


def test_guide_matricule_is_valid() -> None:
    assert validate_patient_matricule("1904112000166") == "1904112000166"
    assert validate_patient_matricule("1904 1120 00166") == "1904112000166"


@pytest.mark.parametrize(
    ("value", "code", "fragment"),
    [
        ("190411200016", "length", "13 chiffres (12 saisis)"),
        ("19041120001666", "length", "13 chiffres (14 saisis)"),
        ("19041120001a6", "digits", "que des chiffres"),
        ("1904132000166", "date", "date de naissance valide"),
        ("1904112000167", "check_digit", "chiffres de contrôle"),
    ],
)
def test_refusals_say_what_is_wrong_in_french(value: str, code: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_patient_matricule(value)
    assert caught.value.code == code
    assert fragment in caught.value.messages[0]


@given(dates, serials)
def test_every_generated_number_is_accepted(birth: datetime.date, serial: int) -> None:
    number = make_patient_matricule(birth, serial)
    assert validate_patient_matricule(number) == number


@given(dates, serials, st.integers(0, 12), st.integers(1, 9))
def test_every_single_digit_change_is_refused(
    birth: datetime.date, serial: int, pos: int, delta: int
) -> None:
    number = make_patient_matricule(birth, serial)
    changed = number[:pos] + str((int(number[pos]) + delta) % 10) + number[pos + 1 :]
    with pytest.raises(ValidationError):
        validate_patient_matricule(changed)


@given(dates, serials, st.integers(0, 11))
def test_every_adjacent_transposition_is_refused(birth: datetime.date, serial: int, pos: int) -> None:
    number = make_patient_matricule(birth, serial)
    if number[pos] == number[pos + 1]:
        return  # swapping equal digits changes nothing
    swapped = number[:pos] + number[pos + 1] + number[pos] + number[pos + 2 :]
    with pytest.raises(ValidationError):
        validate_patient_matricule(swapped)


@given(st.integers(1900, 2026), st.integers(1, 12), st.integers(29, 40), serials)
def test_impossible_dates_are_refused(year: int, month: int, day: int, serial: int) -> None:
    try:
        datetime.date(year, month, day)
        return  # a real date: not what this test is about
    except ValueError:
        pass
    from esante.patients.matricule import luhn_verhoeff_digits

    first = f"{year:04d}{month:02d}{day:02d}{serial:03d}"
    with pytest.raises(ValidationError) as caught:
        validate_patient_matricule(first + luhn_verhoeff_digits(first))
    assert caught.value.code == "date"


def test_month_thirteen_and_day_zero_are_refused() -> None:
    from esante.patients.matricule import luhn_verhoeff_digits

    for first in ("19041320001", "19041100001"):
        with pytest.raises(ValidationError):
            validate_patient_matricule(first + luhn_verhoeff_digits(first))


def test_legacy_eleven_digit_form_only_for_professionals() -> None:
    legacy = make_legacy_matricule(datetime.date(1970, 5, 17), 12)
    assert legacy is not None and len(legacy) == 11
    assert validate_professional_matricule(legacy) == legacy
    assert validate_professional_matricule("1904112000166") == "1904112000166"
    with pytest.raises(ValidationError) as caught:
        validate_patient_matricule(legacy)
    assert caught.value.code == "length"


@given(dates, st.integers(0, 99), st.integers(1, 9), st.integers(0, 10))
def test_legacy_single_digit_change_refused(birth: datetime.date, serial: int, delta: int, pos: int) -> None:
    legacy = make_legacy_matricule(birth, serial)
    if legacy is None:
        return
    assert validate_professional_matricule(legacy) == legacy
    changed = legacy[:pos] + str((int(legacy[pos]) + delta) % 10) + legacy[pos + 1 :]
    with pytest.raises(ValidationError):
        validate_professional_matricule(changed)


def test_legacy_weights_worked_example() -> None:
    # 1970051712: 1*5+9*4+7*3+0*2+0*7+5*6+1*5+7*4+1*3+2*2 = 132; 132 % 11 = 0 -> check digit 0
    assert validate_professional_matricule("19700517120") == "19700517120"
    with pytest.raises(ValidationError) as caught:
        validate_professional_matricule("19700517121")
    assert caught.value.code == "check_digit"
    with pytest.raises(ValidationError) as caught:
        validate_professional_matricule("123456789")
    assert "11 ou 13 chiffres" in caught.value.messages[0]


@given(st.text(alphabet="0123456789", min_size=11, max_size=11))
def test_check_digits_agree_with_python_stdnum(first_eleven: str) -> None:
    from stdnum import luhn, verhoeff

    expected = luhn.calc_check_digit(first_eleven) + verhoeff.calc_check_digit(first_eleven)
    assert luhn_verhoeff_digits(first_eleven) == expected


def test_non_ascii_digits_are_refused_as_non_digits() -> None:
    # "١" (Arabic-Indic one) is a digit to str.isdigit; a matricule holds ASCII digits only.
    with pytest.raises(ValidationError) as caught:
        validate_patient_matricule("١٩٠٤١١٢٠٠٠١٦٦")
    assert caught.value.code == "digits"


def _verdict(check: object, value: str) -> object:
    try:
        return check(value)  # type: ignore[operator]
    except ValidationError as exc:
        return (exc.code, exc.messages)


@given(st.text(alphabet="0123456789", min_size=13, max_size=13))
def test_import_fast_check_agrees_with_the_validator_on_any_13_digits(number: str) -> None:
    # The import's check (precomputed halves of the Luhn and Verhoeff digits) must give the
    # validator's verdict on every input: the same date when valid, the same refusal otherwise.
    expected = _verdict(validate_patient_matricule, number)
    if isinstance(expected, str):
        expected = datetime.date(int(number[:4]), int(number[4:6]), int(number[6:8]))
    assert _verdict(patient_matricule_birth_date, number) == expected


@given(dates, serials, st.integers(0, 12), st.integers(0, 9))
def test_import_fast_check_on_valid_numbers_and_their_one_digit_changes(
    birth: datetime.date, serial: int, pos: int, digit: int
) -> None:
    number = make_patient_matricule(birth, serial)
    assert patient_matricule_birth_date(number) == birth
    changed = number[:pos] + str(digit) + number[pos + 1 :]
    expected = birth if changed == number else _verdict(validate_patient_matricule, changed)
    assert _verdict(patient_matricule_birth_date, changed) == expected


@pytest.mark.parametrize(
    "value", ["1904 1120 00166", "190411200016", "19041120001a6", "", "１９０４１１２０００１６６"]
)
def test_import_fast_check_refuses_what_is_not_13_ascii_digits(value: str) -> None:
    # The import passes the value as read; anything but the 13 digits goes to the validator,
    # which gives its own reason (the import then uses the validator's compact form).
    with pytest.raises(ValidationError) as caught:
        patient_matricule_birth_date(value)
    with pytest.raises(ValidationError) as reference:
        validate_patient_matricule(value.replace(" ", "x"))
    assert caught.value.code == reference.value.code
