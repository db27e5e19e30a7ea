"""The refusal contract of every patient-scoped endpoint, as a mixin.

One list of refusal states (``STATES``) runs against each endpoint a test class names in its
``endpoint`` fixture. For each state the contract checks the status, that nothing of the secret
patient or document leaked into the answer, that nothing was written (grants, openings,
dispensations, copies, documents, blocks) and that the audit trail gained exactly the refusal's
event — or nothing, where the refusal happens before anyone is known (anonymous) or before any
record is looked at (an inactive account). A few states are no refusal for some endpoints (a
hidden document does not close the record page, it only leaves it); their ``Endpoint.allowed``
entry says what the answer is instead, and the contract still checks that the secret document
does not appear. A professional of the wrong profession who holds an access is refused the act
(403) but may see the record it concerns.

The FHIR API and the patient portal reuse the same states with their own endpoints.
"""

import datetime
import html
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone

from esante.access.models import AccessGrant, PatientBlock, RecordOpening
from esante.accounts.models import Professional
from esante.audit.models import AuditEvent
from esante.dispensing.models import CertifiedCopy, Dispensation
from esante.dispensing.services import prescription_mark_dispensed
from esante.documents.models import Document
from esante.documents.services import document_submit
from esante.patients.models import Patient
from tests.access.factories import make_grant, make_patient, make_professional
from tests.dispensing.conftest import LINES, submit_prescription

_CSRF_TOKEN = re.compile(r'"X-CSRFToken": "[^"]*"|name="csrfmiddlewaretoken" value="[^"]*"')

SECRET_TITLE = "Compte rendu psychiatrique Xylophrène"


@dataclass
class World:
    """The secret patient with a prescription (dispensed, with its certified copy) and a
    psychiatric report; another patient with a document of her own."""

    patient: Patient
    prescription_document: Document
    report: Document
    dispensation: Dispensation
    other_patient: Patient
    other_document: Document

    def secrets(self) -> list[str]:
        p = self.patient
        return [p.matricule, p.birth_name.upper(), p.first_names, p.dossier_number, LINES[0].medication]


def make_world() -> World:
    patient = make_patient("Zyxwaldor", "Quentinella", dossier_number="9876543210")
    prescription = submit_prescription(patient)
    report = document_submit(
        content=b"Texte du compte rendu.",
        patient_matricule=patient.matricule,
        type_code="11492-6",
        title=SECRET_TITLE,
        clinical_at=timezone.now() - datetime.timedelta(days=2),
        author_name="Dr Autre",
        source_system="CHL",
    )
    recorder = make_professional("pharmacist", organisation="Pharmacie du Globe")
    make_grant(recorder, patient)
    dispensation = prescription_mark_dispensed(
        prescription=prescription, pharmacist=recorder, kind="full", based_on_version=0, follow_up=False
    )
    name = default_storage.save("copies/contract.pdf", ContentFile(b"%PDF-1.4\n%%EOF\n"))
    CertifiedCopy.objects.create(
        dispensation=dispensation,
        code_digest=uuid.uuid4().hex,
        pdf=name,
        pdf_sha256="0" * 64,
        created_at=timezone.now(),
    )
    other = make_patient("Autrepatiente", "Berthe")
    other_document = document_submit(
        content=b"Autre texte.",
        patient_matricule=other.matricule,
        type_code="11488-4",
        title="Consultation de Berthe",
        clinical_at=timezone.now() - datetime.timedelta(days=1),
        author_name="Dr Autre",
        source_system="CHL",
    )
    return World(patient, prescription.document, report, dispensation, other, other_document)


@dataclass
class Request:
    """Who asks for what: the acting professional (None: anonymous), and the patient, document
    and dispensation the URL names."""

    actor: Professional | None
    patient: Patient
    document: Document
    dispensation: Dispensation
    secret_document: Document | None = None


@dataclass(frozen=True)
class Endpoint:
    """A patient-scoped URL: how to build it, how to call it, the action its refusal traces.

    ``profession`` is who normally uses it; ``wrong_profession`` and ``wrong_document`` say what
    "wrong profession" means for it (a profession the endpoint refuses, or a document the usual
    profession may not read). ``allowed`` maps a state that is no refusal here to the status and
    the events of its answer.
    """

    name: str
    url: Callable[[Request], str]
    refusal_action: str
    method: str = "get"
    data: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    profession: str = "pharmacist"
    wrong_profession: str = ""
    wrong_profession_status: int = 403
    allowed: dict[str, tuple[int, list[tuple[str, str]]]] = field(default_factory=dict)


def _care(actor: Professional, patient: Patient) -> None:
    make_grant(actor, patient)


def anonymous(world: World, endpoint: Endpoint) -> Request:
    return Request(None, world.patient, world.prescription_document, world.dispensation)


def no_grant(world: World, endpoint: Endpoint) -> Request:
    return Request(
        make_professional(endpoint.profession), world.patient, world.prescription_document, world.dispensation
    )


def expired_grant(world: World, endpoint: Endpoint) -> Request:
    actor = make_professional(endpoint.profession)
    past = timezone.now() - datetime.timedelta(days=2)
    make_grant(actor, world.patient, granted_at=past, expires_at=past + datetime.timedelta(hours=1))
    return Request(actor, world.patient, world.prescription_document, world.dispensation)


def revoked_grant(world: World, endpoint: Endpoint) -> Request:
    actor = make_professional(endpoint.profession)
    make_grant(actor, world.patient, revoked_at=timezone.now())
    return Request(actor, world.patient, world.prescription_document, world.dispensation)


def blocked_by_patient(world: World, endpoint: Endpoint) -> Request:
    actor = make_professional(endpoint.profession)
    _care(actor, world.patient)
    PatientBlock.objects.create(patient=world.patient, professional=actor)
    return Request(actor, world.patient, world.prescription_document, world.dispensation)


def document_hidden(world: World, endpoint: Endpoint) -> Request:
    actor = make_professional(endpoint.profession)
    _care(actor, world.patient)
    Document.objects.filter(pk=world.prescription_document.pk).update(hidden_by_patient=True)
    return Request(
        actor, world.patient, world.prescription_document, world.dispensation, world.prescription_document
    )


def record_closed(world: World, endpoint: Endpoint) -> Request:
    actor = make_professional(endpoint.profession)
    _care(actor, world.patient)
    Patient.objects.filter(pk=world.patient.pk).update(dossier_state=Patient.DossierState.CLOSED)
    return Request(actor, world.patient, world.prescription_document, world.dispensation)


def record_opposed(world: World, endpoint: Endpoint) -> Request:
    actor = make_professional(endpoint.profession)
    _care(actor, world.patient)
    Patient.objects.filter(pk=world.patient.pk).update(dossier_state=Patient.DossierState.OPPOSED)
    return Request(actor, world.patient, world.prescription_document, world.dispensation)


def wrong_profession(world: World, endpoint: Endpoint) -> Request:
    """A profession this endpoint refuses; where every profession may use it, the usual one
    asking for a document its profession may not read (a pharmacist and a psychiatric report)."""
    if endpoint.wrong_profession:
        actor = make_professional(endpoint.wrong_profession)
        _care(actor, world.patient)
        return Request(actor, world.patient, world.prescription_document, world.dispensation)
    actor = make_professional(endpoint.profession)
    _care(actor, world.patient)
    return Request(actor, world.patient, world.report, world.dispensation, world.report)


def inactive_account(world: World, endpoint: Endpoint) -> Request:
    actor = make_professional(endpoint.profession, state=Professional.State.SUSPENDED)
    _care(actor, world.patient)
    return Request(actor, world.patient, world.prescription_document, world.dispensation)


def other_patients_document(world: World, endpoint: Endpoint) -> Request:
    """The actor holds an access to another patient and names this patient's document (or, for
    a record-level URL, this patient) under it."""
    actor = make_professional(endpoint.profession)
    _care(actor, world.other_patient)
    return Request(actor, world.other_patient, world.prescription_document, world.dispensation)


STATES: list[Callable[[World, Endpoint], Request]] = [
    anonymous,
    no_grant,
    expired_grant,
    revoked_grant,
    blocked_by_patient,
    document_hidden,
    record_closed,
    record_opposed,
    wrong_profession,
    inactive_account,
    other_patients_document,
]


def _written() -> tuple[Any, ...]:
    """Everything a refused request must leave as it was."""
    return (
        AccessGrant.objects.count(),
        RecordOpening.objects.count(),
        PatientBlock.objects.count(),
        Document.objects.count(),
        list(Dispensation.objects.values_list("withdrawn_at", flat=True).order_by("id")),
        CertifiedCopy.objects.count(),
        list(Patient.objects.values_list("dossier_state", flat=True).order_by("id")),
    )


def _events_after(start: int) -> list[tuple[str, str]]:
    return list(
        AuditEvent.objects.filter(sequence__gt=start).order_by("sequence").values_list("action", "outcome")
    )


class PatientScopedRefusalContract:
    """Mixin: a test class provides an ``endpoint`` fixture (parametrized over its endpoints)."""

    @pytest.mark.parametrize("state", STATES, ids=lambda state: state.__name__)
    @pytest.mark.django_db
    def test_refusal(self, endpoint: Endpoint, state: Callable[[World, Endpoint], Request]) -> None:
        world = make_world()
        asked = state(world, endpoint)
        client = Client()
        if asked.actor is not None:
            client.force_login(asked.actor.user)
        url = endpoint.url(asked)
        before = _written()
        start = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0
        call = getattr(client, endpoint.method)
        response = (
            call(url, endpoint.data, headers=endpoint.headers)
            if endpoint.data
            else call(url, headers=endpoint.headers)
        )
        # Without the masked CSRF tokens: random letters in which a short name turns up now and then.
        body = html.unescape(_CSRF_TOKEN.sub("", response.content.decode(errors="replace")))
        name = state.__name__
        if asked.secret_document is not None:
            assert asked.secret_document.title not in body
        if name in endpoint.allowed:
            status, events = endpoint.allowed[name]
            assert response.status_code == status
            assert _events_after(start) == events
            return
        if name == "anonymous":
            expected_status, expected_events = 302, []
        elif name == "inactive_account":
            expected_status, expected_events = 403, []
        elif name == "wrong_profession" and endpoint.wrong_profession:
            expected_status = endpoint.wrong_profession_status
            expected_events = [(endpoint.refusal_action, "refused")]
        else:
            expected_status, expected_events = 404, [(endpoint.refusal_action, "refused")]
        assert response.status_code == expected_status
        # A professional of the wrong profession may hold an access and read the record: the
        # refusal is of the act, not of the record, so the page may name the patient.
        if not (name == "wrong_profession" and endpoint.wrong_profession):
            for secret in world.secrets():
                assert secret not in body, secret
        assert _written() == before
        assert _events_after(start) == expected_events
        if expected_events:
            event = AuditEvent.objects.get(sequence__gt=start)
            assert event.actor == asked.actor.user  # type: ignore[union-attr]
