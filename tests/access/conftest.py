from typing import Any

import pytest

from esante.accounts.models import Professional
from esante.patients.models import Patient

from .factories import make_patient, make_professional


@pytest.fixture
def pharmacist(db: Any) -> Professional:
    return make_professional("pharmacist")


@pytest.fixture
def doctor(db: Any) -> Professional:
    return make_professional("doctor")


@pytest.fixture
def patient(db: Any) -> Patient:
    return make_patient()
