"""Loading the demo data set."""

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from esante.accounts.demo import DemoProfessional, demo_professionals_load
from esante.core.models import DemoDataSet
from esante.documents.demo import demo_documents_load
from esante.espace.accounts import patient_letter_issue
from esante.espace.models import PatientAccount
from esante.patients.models import Patient
from esante.patients.services import patients_import_batch

from .patients import PEPPA, synthetic_patients


class DemoRefused(Exception):
    pass


@dataclass
class DemoSummary:
    patients_created: int
    already_loaded: bool
    professionals: list[DemoProfessional]
    documents_created: int = 0
    # Peppa's patient area: a fresh activation code while it is not activated, else "".
    patient_activation_code: str = ""


def demo_check_allowed() -> None:
    """The demo never runs with production settings nor on a database holding real data."""
    if settings.PRODUCTION:
        raise DemoRefused(
            "refus : réglages de production actifs (ESANTE_SECRET_KEY défini sans ESANTE_DEBUG). "
            "La démonstration ne s'exécute que sur une base de démonstration."
        )
    if not DemoDataSet.objects.exists() and Patient.objects.exists():
        raise DemoRefused(
            "refus : cette base contient des données qui ne sont pas celles de la démonstration. "
            "Utilisez une base vide (DATABASE_URL ou ESANTE_DATA_DIR)."
        )


def demo_load(*, synthetic: int = 5000) -> DemoSummary:
    """Loads (or completes) the demo data set; idempotent."""
    demo_check_allowed()
    with transaction.atomic():
        marker, created = DemoDataSet.objects.get_or_create(pk=1)
    rows: list[tuple[int, dict[str, Any]]] = [(0, dict(PEPPA))]
    rows += [(number, values) for number, values in enumerate(synthetic_patients(synthetic), start=1)]
    total = 0
    for start in range(0, len(rows), 1000):
        result = patients_import_batch(
            rows=rows[start : start + 1000], source="demo", actor_label="system:demo"
        )
        total += result.created
    professionals = demo_professionals_load()
    documents = demo_documents_load()
    return DemoSummary(
        patient_activation_code=demo_patient_letter(),
        patients_created=total,
        already_loaded=not created,
        professionals=professionals,
        documents_created=documents,
    )


def demo_patient_letter() -> str:
    """A new activation letter for Peppa's patient area at each start while it is not activated
    (the new letter revokes the previous one); "" once activated."""
    peppa = Patient.objects.get(matricule=PEPPA["matricule"])
    account = PatientAccount.objects.filter(patient=peppa).first()
    if account is not None and account.state != PatientAccount.State.REGISTERED:
        return ""
    _, code = patient_letter_issue(patient=peppa, actor_label="system:demo")
    return code
