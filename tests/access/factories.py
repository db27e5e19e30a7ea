"""Local builders for the access tests: active professionals, patients, grants."""

import datetime
import itertools
from typing import Any

from django.utils import timezone

from esante.access.models import AccessGrant
from esante.accounts.models import Professional, User
from esante.patients.matricule import make_patient_matricule
from esante.patients.models import Patient

_serial = itertools.count(1)


def make_professional(
    profession: str = "pharmacist", *, state: str = Professional.State.ACTIVE, **fields: Any
) -> Professional:
    n = next(_serial)
    matricule = f"1980010{n:06d}"
    user = User.objects.create_user(username=matricule, password=None)
    defaults: dict[str, Any] = {
        "matricule": matricule,
        "profession": profession,
        "last_name": f"Pro{n}",
        "first_name": "Test",
        "email": f"pro{n}@example.lu",
        "state": state,
    }
    defaults.update(fields)
    return Professional.objects.create(user=user, **defaults)


def make_patient(
    birth_name: str = "Pig",
    first_names: str = "Peppa",
    birth_date: datetime.date = datetime.date(1904, 11, 20),
    **fields: Any,
) -> Patient:
    n = next(_serial)
    defaults: dict[str, Any] = {
        "matricule": make_patient_matricule(birth_date, n % 1000),
        "birth_name": birth_name,
        "first_names": first_names,
        "birth_date": birth_date,
        "sex": "F",
        "taux": 100,
        "dossier_number": f"16649{n:05d}",
        "platform_identifier": f"17{n:08d}",
    }
    defaults.update(fields)
    return Patient.objects.create(**defaults)


def make_grant(
    professional: Professional,
    patient: Patient,
    *,
    mode: str = AccessGrant.Mode.CARE,
    hours: float = 24,
    **fields: Any,
) -> AccessGrant:
    now = timezone.now()
    values: dict[str, Any] = {"granted_at": now, "expires_at": now + datetime.timedelta(hours=hours)}
    values.update(fields)
    return AccessGrant.objects.create(
        professional=professional, patient=patient, mode=mode, motif="Test", **values
    )
