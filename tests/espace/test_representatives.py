"""Representatives: a parent or guardian, registered by the operator, acts for the represented
patient with their own account; every action says who acted for whom; nobody else's record."""

import datetime
import io

import pytest
from django.core.management import CommandError, call_command

from esante.access.models import PatientBlock
from esante.audit.models import AuditEvent
from esante.espace.models import Representation
from tests.access.factories import make_patient, make_professional
from tests.dispensing.conftest import submit_prescription

from .conftest import active_account, events_after, last_sequence, logged_in_patient

pytestmark = pytest.mark.django_db


def _register(parent_matricule: str, child_matricule: str, *extra: str) -> str:
    out = io.StringIO()
    call_command(
        "add_representative",
        "--representative",
        parent_matricule,
        "--patient",
        child_matricule,
        "--kind",
        "parent",
        *extra,
        stdout=out,
    )
    return out.getvalue()


def test_a_parent_acts_for_the_child_and_the_childs_journal_says_so() -> None:
    parent = active_account(make_patient(birth_name="Pig", first_names="Mummy"), email="mummy@example.lu")
    child = make_patient(birth_name="Pig", first_names="George", birth_date=datetime.date(2019, 5, 1))
    document = submit_prescription(child).document
    assert "enregistrée" in _register(parent.patient.matricule, child.matricule)
    assert AuditEvent.objects.filter(action="espace.representative.add", patient=child).exists()
    browser = logged_in_patient(parent)
    # Her own record first; the selector offers George.
    page = browser.get("/patient/dossier/").content.decode()
    assert "Agir pour" in page and "PIG George" in page
    assert document.title not in page
    start = last_sequence()
    assert browser.post("/patient/agir-pour/", {"patient": str(child.public_id)}).status_code == 302
    page = browser.get("/patient/dossier/").content.decode()
    assert document.title in page and "représentant légal" in page
    pro = make_professional(last_name="Schmit")
    browser.post(f"/patient/choix/bloquer/{pro.pk}/")
    block = PatientBlock.objects.get()
    assert block.patient_id == child.pk
    assert events_after(start) == [
        ("espace.act_for", "success"),
        ("espace.record.view", "success"),
        ("patient.block", "success"),
    ]
    view = AuditEvent.objects.get(action="espace.record.view", patient=child)
    assert view.actor_id == parent.user_id and view.details["kind"] == "parent"
    # Back to her own record: George's documents are gone from the page.
    browser.post("/patient/agir-pour/", {"patient": "moi"})
    assert document.title not in browser.get("/patient/dossier/").content.decode()


def test_a_representative_reaches_only_the_represented() -> None:
    parent = active_account()
    stranger = make_patient(birth_name="Wolf")
    browser = logged_in_patient(parent)
    start = last_sequence()
    response = browser.post("/patient/agir-pour/", {"patient": str(stranger.public_id)})
    assert response.status_code == 404
    assert "Wolf" not in response.content.decode() and "WOLF" not in response.content.decode()
    assert events_after(start) == [("espace.not_found", "refused")]
    assert AuditEvent.objects.get(action="espace.not_found").patient_id == parent.patient_id


def test_an_ended_representation_takes_effect_at_once() -> None:
    parent = active_account()
    child = make_patient(birth_name="Pig", first_names="George")
    document = submit_prescription(child).document
    _register(parent.patient.matricule, child.matricule)
    browser = logged_in_patient(parent)
    browser.post("/patient/agir-pour/", {"patient": str(child.public_id)})
    Representation.objects.update(ends_at=datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC))
    page = browser.get("/patient/dossier/").content.decode()
    assert document.title not in page and "PIG George" not in page


def test_add_representative_refusals() -> None:
    parent = active_account()
    child = make_patient(first_names="George")
    with pytest.raises(CommandError, match="pas d'espace patient"):
        _register(child.matricule, parent.patient.matricule)
    with pytest.raises(CommandError, match="lui-même"):
        _register(parent.patient.matricule, parent.patient.matricule)
    _register(parent.patient.matricule, child.matricule)
    with pytest.raises(CommandError, match="déjà enregistré"):
        _register(parent.patient.matricule, child.matricule)
    assert Representation.objects.count() == 1
