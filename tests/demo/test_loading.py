"""The demo data set: refused on production settings or real data, idempotent, the guide's patient."""

import pytest
from django.test import override_settings

from esante.demo.loading import DemoRefused, demo_check_allowed, demo_load
from esante.patients.models import Patient


@pytest.mark.django_db
def test_demo_refuses_production_settings() -> None:
    with override_settings(PRODUCTION=True), pytest.raises(DemoRefused, match="production"):
        demo_check_allowed()
    assert not Patient.objects.exists()


@pytest.mark.django_db
def test_demo_refuses_a_database_with_real_data() -> None:
    Patient.objects.create(
        matricule="1904112000166",
        birth_name="PIG",
        first_names="Peppa",
        birth_date="1904-11-20",
        sex="F",
        platform_identifier="1700000151",
    )
    with pytest.raises(DemoRefused, match="pas celles de la démonstration"):
        demo_load(synthetic=10)
    assert Patient.objects.count() == 1


@pytest.mark.django_db
def test_demo_is_idempotent_and_has_the_guide_patient() -> None:
    first = demo_load(synthetic=200)
    second = demo_load(synthetic=200)
    assert (first.patients_created, second.patients_created, second.already_loaded) == (201, 0, True)
    peppa = Patient.objects.get(matricule="1904112000166")
    assert (peppa.birth_name, peppa.first_names, peppa.sex, peppa.taux) == ("PIG", "Peppa", "F", 100)
    assert (peppa.dossier_number, peppa.platform_identifier) == ("1664927202", "1700000151")
    assert Patient.objects.exclude(usage_name="").exists()
    assert (
        Patient.objects.filter(birth_name__contains="ç").exists()
        or Patient.objects.filter(first_names__regex=r"[éèçãíóáú]").exists()
    )
