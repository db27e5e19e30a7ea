"""The patients' portal's refusal contract: for every endpoint and every state that must be
refused, the status; that nothing of the owner's record leaked into the answer; that nothing was
written (blocks, hidden flags, record state, notifications); and that the trail gained exactly
the refusal's event — ``espace.not_found``, naming the requester's own record, never the owner's
— or nothing where no patient principal is known (anonymous, a professional, a suspended
account)."""

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client, TestCase

from esante.access.models import PatientBlock
from esante.audit.models import AuditEvent
from esante.dispensing.models import CertifiedCopy, Dispensation
from esante.dispensing.services import prescription_mark_dispensed
from esante.documents.models import Document
from esante.espace.models import PatientAccount, Representation
from esante.patients.models import Patient
from tests.access.factories import make_grant, make_patient, make_professional
from tests.dispensing.conftest import submit_prescription

from .conftest import active_account, last_sequence

pytestmark = pytest.mark.django_db

SECRET_NAME = "Xylophrène"


@dataclass
class World:
    owner: PatientAccount
    document: Document
    block: PatientBlock
    other: PatientAccount
    dispensation: Dispensation


def make_world() -> World:
    owner = active_account(make_patient(birth_name=SECRET_NAME, first_names="Zénobie"), email="z@example.lu")
    document = submit_prescription(owner.patient, document_id="RX-SECRET").document
    block = PatientBlock.objects.create(
        patient=owner.patient, professional=make_professional(), reason="patient"
    )
    other = active_account(make_patient(birth_name="Wolf", first_names="Wanda"), email="w@example.lu")
    pharmacist = make_professional("pharmacist")
    make_grant(pharmacist, owner.patient)
    with TestCase.captureOnCommitCallbacks(execute=True):  # the certified copy, as the queue makes it
        dispensation = prescription_mark_dispensed(
            prescription=document.prescription, pharmacist=pharmacist, kind="full", based_on_version=0
        )
    assert CertifiedCopy.objects.filter(dispensation=dispensation).exists()
    return World(owner, document, block, other, dispensation)


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    url: Callable[[World], str]
    data: Callable[[World], dict[str, str]] = lambda world: {}
    by_id: bool = True  # names an object of the owner's record


ENDPOINTS = [
    Endpoint("document", "get", lambda w: f"/patient/dossier/document/{w.document.public_id}/"),
    Endpoint("content", "get", lambda w: f"/patient/dossier/document/{w.document.public_id}/contenu"),
    Endpoint("hide-page", "get", lambda w: f"/patient/dossier/document/{w.document.public_id}/masquer/"),
    Endpoint("hide", "post", lambda w: f"/patient/dossier/document/{w.document.public_id}/masquer/"),
    Endpoint("show", "post", lambda w: f"/patient/dossier/document/{w.document.public_id}/afficher/"),
    Endpoint("unblock-page", "get", lambda w: f"/patient/choix/debloquer/{w.block.pk}/"),
    Endpoint("unblock", "post", lambda w: f"/patient/choix/debloquer/{w.block.pk}/"),
    Endpoint(
        "act-for",
        "post",
        lambda w: "/patient/agir-pour/",
        lambda w: {"patient": str(w.owner.patient.public_id)},
    ),
    Endpoint("record", "get", lambda w: "/patient/dossier/", by_id=False),
    Endpoint("journal", "get", lambda w: "/patient/journal/", by_id=False),
    Endpoint("csv", "get", lambda w: "/patient/journal/export.csv", by_id=False),
    Endpoint("pdf", "get", lambda w: "/patient/journal/export.pdf", by_id=False),
    Endpoint("choices", "get", lambda w: "/patient/choix/", by_id=False),
    Endpoint("oppose", "post", lambda w: "/patient/choix/fermer/", by_id=False),
    Endpoint(
        "notifications",
        "post",
        lambda w: "/patient/choix/notifications/",
        lambda w: {"channel": "email"},
        by_id=False,
    ),
]


def anonymous(world: World) -> tuple[Client, int]:
    return Client(), 302


def professional_with_care_access(world: World) -> tuple[Client, int]:
    pro = make_professional("doctor")
    make_grant(pro, world.owner.patient)
    browser = Client()
    browser.force_login(pro.user)
    return browser, 403


def suspended_owner(world: World) -> tuple[Client, int]:
    PatientAccount.objects.filter(pk=world.owner.pk).update(state=PatientAccount.State.SUSPENDED)
    browser = Client()
    browser.force_login(world.owner.user)
    return browser, 403


def another_patient(world: World) -> tuple[Client, int]:
    browser = Client()
    browser.force_login(world.other.user)
    return browser, 404


def representative_of_someone_else(world: World) -> tuple[Client, int]:
    third = make_patient(birth_name="Tiers")
    Representation.objects.create(
        representative=world.other,
        patient=third,
        kind="parent",
        starts_at=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC),
        registered_by="test",
    )
    browser = Client()
    browser.force_login(world.other.user)
    session = browser.session
    session["espace_acting_for"] = str(third.public_id)
    session.save()
    return browser, 404


def ended_representation_of_the_owner(world: World) -> tuple[Client, int]:
    Representation.objects.create(
        representative=world.other,
        patient=world.owner.patient,
        kind="parent",
        starts_at=datetime.datetime(2010, 1, 1, tzinfo=datetime.UTC),
        ends_at=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC),
        registered_by="test",
    )
    browser = Client()
    browser.force_login(world.other.user)
    session = browser.session
    session["espace_acting_for"] = str(world.owner.patient.public_id)
    session.save()
    return browser, 404


STATES = [
    anonymous,
    professional_with_care_access,
    suspended_owner,
    another_patient,
    representative_of_someone_else,
    ended_representation_of_the_owner,
]


def _written(world: World) -> tuple[Any, ...]:
    """The owner's record as the patient's choices leave it."""
    owner = world.owner
    return (
        list(PatientBlock.objects.filter(patient_id=owner.patient_id).values_list("pk", "lifted_at")),
        list(Document.objects.filter(patient_id=owner.patient_id).values_list("pk", "hidden_by_patient")),
        Patient.objects.get(pk=owner.patient_id).dossier_state,
        PatientAccount.objects.get(pk=owner.pk).notify_channel,
    )


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
@pytest.mark.parametrize("state", STATES, ids=lambda s: s.__name__)
def test_refusal(endpoint: Endpoint, state: Callable[[World], tuple[Client, int]]) -> None:
    world = make_world()
    browser, expected = state(world)
    own_record = not endpoint.by_id and expected == 404
    if own_record:
        # A list page shows the requester's own record: not a refusal, but nothing of the owner's.
        expected = 302 if endpoint.method == "post" else 200
    before = _written(world)
    start = last_sequence()
    response = getattr(browser, endpoint.method)(endpoint.url(world), endpoint.data(world))
    assert response.status_code == expected, (endpoint.name, response.status_code)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    text = body.decode("utf-8", errors="replace")
    assert SECRET_NAME not in text and SECRET_NAME.upper() not in text
    assert world.owner.patient.matricule not in text
    assert str(world.document.public_id) not in text
    assert str(world.dispensation.public_id) not in text
    if not own_record:
        assert not body.startswith(b"%PDF")  # no certified copy, no journal PDF
    assert _written(world) == before
    events = list(AuditEvent.objects.filter(sequence__gt=start).order_by("sequence"))
    if own_record:
        assert all(e.patient_id != world.owner.patient_id for e in events)
    elif expected == 404:
        assert [(e.action, e.outcome) for e in events] == [("espace.not_found", "refused")]
        # In the journal of the record the requester acts on, never in the owner's.
        assert events[0].patient_id != world.owner.patient_id
        assert events[0].actor_id == world.other.user_id
    else:
        assert events == []
