import datetime

import pytest
from django.core.exceptions import ValidationError

from esante.patients.matricule import make_patient_matricule
from esante.patients.models import Patient
from esante.patients.selectors import patient_search, patient_search_criteria

BIRTH = datetime.date(1980, 5, 17)
_serial = iter(range(1, 1000))


def patient(
    birth_name: str, first_names: str, usage_name: str = "", birth_date: datetime.date = BIRTH
) -> Patient:
    n = next(_serial)
    return Patient.objects.create(
        matricule=make_patient_matricule(birth_date, n),
        birth_name=birth_name,
        usage_name=usage_name,
        first_names=first_names,
        birth_date=birth_date,
        sex="F",
        platform_identifier=f"17{n:08d}",
    )


def search(**criteria: object) -> list[Patient]:
    return list(patient_search(patient_search_criteria(**criteria)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "criteria",
    [
        {},
        {"name": "D"},
        {"name": "Dupont"},
        {"first_name": "Jean"},
        {"name": "D", "first_name": "Jean"},
        {"name": "--", "first_name": "J"},
        {"first_name": "J", "birth_date": BIRTH},
    ],
)
def test_not_enough_criteria(criteria: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as caught:
        patient_search_criteria(**criteria)  # type: ignore[arg-type]
    assert caught.value.code == "criteria"


def test_bad_matricule() -> None:
    with pytest.raises(ValidationError) as caught:
        patient_search_criteria(matricule="1904112000167")
    assert caught.value.code == "check_digit"


@pytest.mark.django_db
def test_matricule_exact() -> None:
    target = patient("Dupont", "Jean")
    patient("Dupont", "Jeanne")
    assert search(matricule=target.matricule) == [target]
    assert search(matricule=f" {target.matricule[:4]} {target.matricule[4:]} ") == [target]


@pytest.mark.django_db
def test_name_prefix_accent_and_case_insensitive_on_birth_or_usage_name() -> None:
    muller = patient("MULLER", "Anna")
    goncalves = patient("Gonçalves", "Rui")
    married = patient("Schmit", "Anne", usage_name="Müller-Weber")
    assert search(name="Müller", first_name="a") == [muller, married]  # ordered by birth name
    assert set(search(name="mu", first_name="an")) == {muller, married}
    assert search(name="GONÇ", birth_date=BIRTH) == [goncalves]
    assert search(name="gonc", first_name="r") == [goncalves]
    assert search(name="mullerz", first_name="a") == []


@pytest.mark.django_db
def test_first_name_and_birth_date_narrow_the_names() -> None:
    jean = patient("Dupont", "Jean")
    paul = patient("Dupont", "Paul")
    older = patient("Dupont", "Jean", birth_date=datetime.date(1950, 1, 1))
    assert search(name="dup", first_name="j") == [jean, older]  # same names: creation order
    assert search(name="dup", first_name="p") == [paul]
    assert search(name="dup", birth_date=datetime.date(1950, 1, 1)) == [older]
    assert search(name="dup", first_name="j", birth_date=BIRTH) == [jean]


@pytest.mark.django_db
def test_prefix_boundaries() -> None:
    dupz = patient("Dupz", "Jean")
    dur = patient("Dur", "Jean")
    assert search(name="dup", first_name="j") == [dupz]
    assert search(name="du", first_name="j") == [dupz, dur]


@pytest.mark.django_db
def test_search_is_one_query(django_assert_num_queries: object) -> None:
    for i in range(5):
        patient("Dupont", f"Jean{i}")
    with django_assert_num_queries(1):  # type: ignore[operator]
        assert len(search(name="dup", first_name="j")) == 5
