"""Demo documents: PIG Peppa's three ePrescriptions and a realistic mix for other patients.

Idempotent: every demo document has a stable external identifier, so a second load skips it.
Peppa's prescriptions are dated 22:14 three days before the first load (within their 3-month
validity, so they can be dispensed), as in the guide's screenshot.
"""

import datetime
import random
from typing import Any

from django.utils import timezone

from esante.accounts.models import Professional
from esante.patients.models import Patient

from . import cda
from .cda_builder import Line, Person, note_cda, prescription_cda
from .services import DocumentDuplicate, document_submit

PEPPA_PRESCRIPTIONS = [
    [
        Line("AMOXICILLINE 1 g comprimés", "0123456", "1 comprimé matin, midi et soir pendant 7 jours", 2),
        Line("PARACETAMOL 500 mg comprimés", "0234567", "1 à 2 comprimés toutes les 6 heures si douleur", 1),
    ],
    [Line("SALBUTAMOL 100 µg/dose aérosol", "0345678", "2 bouffées si gêne respiratoire", 3, "flacon")],
    [
        Line("IBUPROFENE 400 mg comprimés", "0456789", "1 comprimé 3 fois par jour pendant les repas", 2),
        Line("OMEPRAZOLE 20 mg gélules", "0567890", "1 gélule le matin à jeun", 1),
        Line("VITAMINE D3 25 000 UI ampoules", "0678901", "1 ampoule par mois", 3, "ampoule"),
    ],
]

_NOTES: list[tuple[str, str, str, list[str]]] = [
    (
        "11502-2",
        "Résultats de laboratoire",
        "Bilan sanguin",
        ["Hémoglobine 13,2 g/dL.", "Glycémie à jeun 0,95 g/L."],
    ),
    (
        "18842-5",
        "Lettre de sortie",
        "Lettre de sortie — Centre Hospitalier de Luxembourg",
        ["Hospitalisation pour pneumopathie, évolution favorable.", "Traitement de sortie : amoxicilline."],
    ),
    (
        "11488-4",
        "Note de consultation",
        "Consultation de médecine générale",
        ["Contrôle tensionnel : 128/82 mmHg."],
    ),
    (
        "18748-4",
        "Compte rendu d'imagerie",
        "Radiographie du thorax",
        ["Pas d'anomalie pleuro-parenchymateuse."],
    ),
    (
        "11369-6",
        "Vaccination",
        "Vaccination antigrippale",
        ["Vaccin grippe saisonnière, lot A123, deltoïde gauche."],
    ),
    (
        "11492-6",
        "Compte rendu psychiatrique",
        "Consultation de psychiatrie",
        ["Suivi d'un épisode dépressif."],
    ),
]


def _person_of(patient: Patient) -> Person:
    return Person(patient.first_names, patient.usage_name or patient.birth_name)


def _submit(**arguments: Any) -> bool:
    try:
        document_submit(actor_label="system:demo", **arguments)
    except DocumentDuplicate:
        return False
    return True


def demo_documents_load(*, now: datetime.datetime | None = None, patients: int = 40) -> int:
    """Loads the demo documents; returns how many were created (0 when already loaded)."""
    now = timezone.localtime(now or timezone.now(), cda.LUXEMBOURG)
    doctors = list(Professional.objects.filter(profession="doctor").order_by("matricule")[:3])
    prescriber = (
        Person(doctors[0].first_name, doctors[0].last_name, doctors[0].matricule, "Dr")
        if doctors
        else Person("Marc", "WEBER", "", "Dr")
    )
    created = 0
    peppa = Patient.objects.filter(matricule="1904112000166").first()
    if peppa is not None:
        day = (now - datetime.timedelta(days=3)).replace(hour=22, minute=14, second=0, microsecond=0)
        for number, lines in enumerate(PEPPA_PRESCRIPTIONS, start=1):
            at = day + datetime.timedelta(seconds=number)
            content = prescription_cda(
                document_id=f"DEMO-PEPPA-RX-{number}",
                at=at,
                patient_matricule=peppa.matricule,
                patient=_person_of(peppa),
                birth=peppa.birth_date,
                sex=peppa.sex,
                prescriber=prescriber,
                organisation="Cabinet médical du Kirchberg",
                lines=lines,
            )
            created += _submit(content=content, source_system="eServices")
    rng = random.Random(42)  # noqa: S311 - demo data
    others = list(Patient.objects.exclude(matricule="1904112000166").order_by("id")[:patients])
    authors = [Person(d.first_name, d.last_name, d.matricule, "Dr") for d in doctors] or [prescriber]
    for index, patient in enumerate(others):
        for slot in range(rng.randrange(2, 7)):
            code, type_name, title, paragraphs = rng.choice(_NOTES)
            author = rng.choice(authors)
            confidentiality = "V" if code == "11492-6" else rng.choice("NNNNNR")
            at = now - datetime.timedelta(days=rng.randrange(1, 900), hours=rng.randrange(0, 12))
            content = note_cda(
                document_id=f"DEMO-{index}-{slot}",
                type_code=code,
                type_name=type_name,
                title=title,
                at=at,
                patient_matricule=patient.matricule,
                patient=_person_of(patient),
                birth=patient.birth_date,
                sex=patient.sex,
                author=author,
                organisation="Centre Hospitalier de Luxembourg",
                paragraphs=paragraphs,
                confidentiality=confidentiality,
            )
            created += _submit(
                content=content,
                source_system=rng.choice(["eServices", "CHL", "Laboratoires Réunis"]),
                hidden_by_patient=rng.random() < 0.05,
            )
        if index % 3 == 0:
            at = now - datetime.timedelta(days=rng.randrange(1, 60))
            content = prescription_cda(
                document_id=f"DEMO-{index}-RX",
                at=at,
                patient_matricule=patient.matricule,
                patient=_person_of(patient),
                birth=patient.birth_date,
                sex=patient.sex,
                prescriber=rng.choice(authors),
                organisation="Cabinet médical",
                lines=rng.choice(PEPPA_PRESCRIPTIONS),
            )
            created += _submit(content=content, source_system="eServices")
    return created
