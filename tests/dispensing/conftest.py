"""The usual cast of the dispensing tests: Peppa, her prescription, pharmacists at the counter."""

import datetime
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from esante.accounts.models import Professional
from esante.audit.models import AuditEvent
from esante.documents import cda
from esante.documents.cda_builder import Line, Person, prescription_cda
from esante.documents.models import Document, Prescription
from esante.documents.services import document_submit
from esante.patients.models import Patient
from tests.access.factories import make_grant, make_patient, make_professional

LINES = [
    Line("AMOXICILLINE 1 g comprimés", "0123456", "1 comprimé 3 fois par jour", 3),
    Line("PARACETAMOL 500 mg comprimés", "0234567", "si douleur", 2),
]


def submit_prescription(
    patient: Patient, *, at: datetime.datetime | None = None, document_id: str = "RX-1", lines: Any = None
) -> Prescription:
    at = timezone.localtime(at or timezone.now() - datetime.timedelta(days=1), cda.LUXEMBOURG)
    content = prescription_cda(
        document_id=document_id,
        at=at.replace(microsecond=0),
        patient_matricule=patient.matricule,
        patient=Person(patient.first_names, patient.birth_name),
        birth=patient.birth_date,
        sex=patient.sex,
        prescriber=Person("Marc", "Weber", "", "Dr"),
        organisation="Cabinet",
        lines=lines or LINES,
    )
    document = document_submit(content=content, source_system="eServices")
    return Prescription.objects.get(document=document)


def pharmacist_with_access(patient: Patient, **fields: Any) -> Professional:
    fields.setdefault("organisation", "Pharmacie du Globe")
    pharmacist = make_professional("pharmacist", **fields)
    make_grant(pharmacist, patient)
    return pharmacist


def logged_in(professional: Professional) -> Client:
    client = Client()
    client.force_login(professional.user)
    return client


def last_sequence() -> int:
    return AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0


def events_after(start: int) -> list[tuple[str, str]]:
    return list(
        AuditEvent.objects.filter(sequence__gt=start).order_by("sequence").values_list("action", "outcome")
    )


def snapshot(prescription: Prescription) -> tuple[Any, ...]:
    """Everything a refused attempt must leave untouched."""
    from esante.dispensing.models import CertifiedCopy, Dispensation, DispensationLine

    fresh = Prescription.objects.get(pk=prescription.pk)
    return (
        fresh.dispensation_state,
        fresh.state_version,
        Dispensation.objects.count(),
        list(Dispensation.objects.values_list("withdrawn_at", flat=True).order_by("id")),
        DispensationLine.objects.count(),
        CertifiedCopy.objects.count(),
        list(CertifiedCopy.objects.values_list("superseded_at", flat=True).order_by("id")),
        Document.objects.count(),
        list(Document.objects.values_list("status", flat=True).order_by("id")),
    )


@pytest.fixture
def peppa(db: None) -> Patient:
    return make_patient()


@pytest.fixture
def prescription(peppa: Patient) -> Prescription:
    return submit_prescription(peppa)


@pytest.fixture
def pharmacist(peppa: Patient) -> Professional:
    return pharmacist_with_access(peppa, first_name="Claudine", last_name="Kremer")


def urls(prescription: Prescription) -> dict[str, str]:
    document = prescription.document
    base = f"/edocuments/patient/{document.patient.public_id}/document/{document.public_id}/"
    return {"viewer": base, "dispense": base + "dispensation/"}


def partial_post(prescription: Prescription, quantities: list[int], version: int = 0) -> dict[str, Any]:
    lines = list(prescription.lines.order_by("position"))
    data: dict[str, Any] = {"kind": "partial", "state_version": version, "accept": "on"}
    for line, quantity in zip(lines, quantities, strict=True):
        data[f"line_{line.pk}"] = quantity
    return data
