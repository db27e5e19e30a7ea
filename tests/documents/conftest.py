import datetime

import pytest

from esante.documents import cda
from esante.documents.cda_builder import Line, Person, prescription_cda
from esante.patients.models import Patient

PEPPA = "1904112000166"
AT = datetime.datetime(2026, 11, 25, 22, 14, tzinfo=cda.LUXEMBOURG)


@pytest.fixture
def peppa(db: None) -> Patient:
    return Patient.objects.create(
        matricule=PEPPA,
        birth_name="PIG",
        first_names="Peppa",
        birth_date=datetime.date(1904, 11, 20),
        sex="F",
        taux=100,
        dossier_number="1664927202",
        platform_identifier="1700000151",
    )


def make_prescription(
    document_id: str = "RX-1", matricule: str = PEPPA, lines: list[Line] | None = None
) -> bytes:
    return prescription_cda(
        document_id=document_id,
        at=AT,
        patient_matricule=matricule,
        patient=Person("Peppa", "PIG"),
        birth=datetime.date(1904, 11, 20),
        sex="F",
        prescriber=Person("Marc", "Weber", "", "Dr"),
        organisation="Cabinet",
        lines=lines
        or [
            Line("AMOXICILLINE 1 g", "0123456", "1 comprimé 3 fois par jour", 2),
            Line("PARACETAMOL 500 mg", "0234567", "si douleur", 1),
        ],
    )
