"""``esante simulate_national``: the counts of the scale, consistent rows, a chain that verifies,
the refusal of a database that holds data, and the portal working on the result."""

import io
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Count
from django.test import Client, override_settings
from django.utils import timezone

from esante.access.models import AccessGrant
from esante.accounts.models import Professional
from esante.audit.anchoring import audit_anchor
from esante.audit.models import AuditChainHead, AuditEvent
from esante.demo.national import SHARED_CONTENT, scaled
from esante.dispensing.models import Dispensation, DispensationLine
from esante.documents.models import Document, Prescription, PrescriptionLine
from esante.patients.matricule import validate_patient_matricule
from esante.patients.models import Patient

SCALE = 0.0001


@pytest.fixture(autouse=True)
def own_heads_files(settings: Any, tmp_path: Path) -> None:
    """Each test signs its own trail: the heads file is not rolled back with the database."""
    settings.AUDIT_HEADS_FILE = tmp_path / "heads.jsonl"
    settings.AUDIT_SIGNER_STATE_FILE = tmp_path / "signer-state.json"
    settings.AUDIT_HEADS_COPY_FILES = []
    settings.AUDIT_WITNESS_URL = ""


def simulate(*arguments: str) -> str:
    out = io.StringIO()
    call_command("simulate_national", "--scale", str(SCALE), *arguments, verbosity=0, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_the_scale_gives_the_expected_counts_and_consistent_rows() -> None:
    output = simulate()
    expected = scaled(SCALE)
    assert expected == {
        "patients": 120,
        "documents": 2000,
        "prescriptions": 450,
        "dispensations": 500,
        "audit_events": 5000,
        "professionals": 20,
    }
    assert Patient.objects.count() == 120
    assert Professional.objects.count() == 20
    assert Document.objects.count() == 2000
    assert Prescription.objects.count() == 450
    assert PrescriptionLine.objects.count() == 900
    assert Dispensation.objects.count() == 500
    assert DispensationLine.objects.count() == 1000
    assert AccessGrant.objects.count() == 120
    assert AuditEvent.objects.count() == 5001  # the synthetic events, then the load's own
    assert "documents: 2000 lignes" in output
    for matricule in Patient.objects.values_list("matricule", flat=True):
        assert validate_patient_matricule(matricule) == matricule
    # Each prescription's state and version agree with its dispensations.
    for state, version, dispensations in Prescription.objects.annotate(n=Count("dispensations")).values_list(
        "dispensation_state", "state_version", "n"
    ):
        assert (state == "open") == (dispensations == 0)
        assert version == dispensations
    assert not Dispensation.objects.exclude(pharmacist__profession="pharmacist").exists()
    assert set(Document.objects.values_list("size", flat=True)) == {len(SHARED_CONTENT)}
    # The trail speaks of the rows: a document read names one of that patient's documents, a
    # dispensation that patient's dispensation and its pharmacist, a grant that patient's grant.
    documents = dict(Document.objects.values_list("public_id", "patient_id"))
    dispensations = {
        str(public_id): (patient_id, pharmacist_user)
        for public_id, patient_id, pharmacist_user in Dispensation.objects.values_list(
            "public_id", "prescription__document__patient_id", "pharmacist__user_id"
        )
    }
    grants = {
        str(pk): (patient_id, user)
        for pk, patient_id, user in AccessGrant.objects.values_list(
            "pk", "patient_id", "professional__user_id"
        )
    }
    seen = set()
    for action, object_type, object_id, patient_id, actor_id in AuditEvent.objects.exclude(
        action="platform.simulation"
    ).values_list("action", "object_type", "object_id", "patient_id", "actor_id"):
        seen.add(action)
        if action == "document.read":
            assert (object_type, documents[uuid.UUID(object_id)]) == ("document", patient_id)
        elif action == "prescription.dispense":
            assert (object_type, dispensations[object_id]) == ("Dispensation", (patient_id, actor_id))
        elif action == "access.grant":
            assert (object_type, grants[object_id]) == ("AccessGrant", (patient_id, actor_id))
        elif action == "patient.search":
            assert patient_id is None
        else:
            assert patient_id is not None
    assert seen == {"record.open", "record.view", "document.read", "patient.search"} | {
        "prescription.dispense",
        "access.grant",
    }
    last = AuditEvent.objects.order_by("-sequence").first()
    assert last is not None
    assert (last.action, last.details["rows"]["documents"]) == ("platform.simulation", 2000)
    assert AuditChainHead.objects.get(pk=1).sequence == last.sequence
    call_command("verify_audit", verbosity=0)  # raises CommandError unless intact and signed


@pytest.mark.django_db
def test_a_database_that_holds_data_is_refused_unless_forced() -> None:
    Patient.objects.create(
        matricule="1904112000166",
        birth_name="PIG",
        first_names="Peppa",
        birth_date="1904-11-20",
        sex="F",
        platform_identifier="1700000151",
    )
    with pytest.raises(CommandError, match="contient déjà des données"):
        simulate()
    assert Patient.objects.count() == 1
    assert not Document.objects.exists()
    assert not AuditEvent.objects.exists()
    simulate("--force")
    assert Patient.objects.count() == 121
    assert Document.objects.count() == 2000
    call_command("verify_audit", verbosity=0)


@pytest.mark.django_db
def test_a_second_forced_load_adds_to_the_first_and_the_chain_still_verifies() -> None:
    simulate()
    simulate("--force")
    assert Patient.objects.count() == 240
    assert Dispensation.objects.count() == 1000
    assert AuditEvent.objects.count() == 10002
    call_command("verify_audit", verbosity=0)


@pytest.mark.django_db
def test_production_settings_are_refused() -> None:
    with override_settings(PRODUCTION=True), pytest.raises(CommandError, match="production"):
        simulate()
    assert not Patient.objects.exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize("scale", ["0", "-1", "11"])
def test_a_scale_out_of_range_is_refused(scale: str) -> None:
    with pytest.raises(CommandError, match="échelle"):
        call_command("simulate_national", "--scale", scale, verbosity=0)


@pytest.mark.django_db
def test_the_portal_works_on_the_simulated_data() -> None:
    simulate()
    now = timezone.now()
    grant = (
        AccessGrant.objects.filter(expires_at__gt=now, patient__documents__isnull=False)
        .select_related("professional__user", "patient")
        .first()
    )
    assert grant is not None
    patient, professional = grant.patient, grant.professional
    client = Client()
    client.force_login(professional.user)
    before = AuditChainHead.objects.get(pk=1).sequence

    found = client.post("/edocuments/recherche/", {"matricule": patient.matricule})
    assert found.status_code == 200
    assert patient.birth_name.upper() in found.content.decode()

    record = client.get(f"/edocuments/patient/{patient.public_id}/?vue=documentaire")
    assert record.status_code == 200
    document = Document.objects.filter(patient=patient).order_by("-clinical_at").first()
    assert document is not None
    assert document.title in record.content.decode()

    content = client.get(f"/edocuments/patient/{patient.public_id}/document/{document.public_id}/contenu")
    assert content.status_code == 200
    assert b"".join(content.streaming_content if content.streaming else [content.content]) == SHARED_CONTENT

    actions = list(AuditEvent.objects.filter(sequence__gt=before).values_list("action", flat=True))
    assert "patient.search" in actions
    assert "document.content" in actions or "document.read" in actions
    audit_anchor()  # as the server's signer does
    call_command("verify_audit", verbosity=0)  # the portal's events chain after the simulated ones
