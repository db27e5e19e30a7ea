"""The portal: "Marquer comme dispensé" in the viewer, full and partial dispensation, the remainder,
withdrawal, and every refusal with its status code, its audit event and nothing else written."""

import datetime
from typing import Any

import pytest
from django.test import TestCase
from django.utils import timezone

from esante.access.models import AccessGrant
from esante.accounts.models import Professional
from esante.audit.models import AuditEvent
from esante.dispensing.models import CertifiedCopy, Dispensation
from esante.documents.models import Document, Prescription
from esante.patients.models import Patient
from tests.access.factories import make_grant, make_professional

from .conftest import (
    events_after,
    last_sequence,
    logged_in,
    partial_post,
    pharmacist_with_access,
    snapshot,
    submit_prescription,
    urls,
)

WARNING = (
    "Une prescription marquée comme dispensée (pictogramme rouge) ne devrait normalement plus être utilisée"
)


def text(response: Any) -> str:
    return str(response.content.decode()).replace("&#x27;", "'")


SUCCESS = [
    ("prescription.dispense", "success"),
    ("document.submit", "success"),
    ("dispensation.certify", "success"),
]


def full_post(version: int = 0) -> dict[str, object]:
    return {"kind": "full", "state_version": version, "accept": "on"}


@pytest.mark.django_db
def test_viewer_offers_the_guide_dialog_to_a_pharmacist(
    prescription: Prescription, pharmacist: Professional
) -> None:
    html = text(logged_in(pharmacist).get(urls(prescription)["viewer"]))
    for label in (
        "Marquer comme dispensé",
        "Dispensée entièrement",
        "Dispensée partiellement",
        WARNING,
        "Je comprends et j'accepte ce principe.",
        "Status (rouge: dispensé entièrement)",
        "Annuler",
        "Valider",
        "Grille de dispensation",
    ):
        assert label in html, label
    assert 'name="state_version" value="0"' in html
    assert 'name="accept"' in html and "required" in html


@pytest.mark.django_db
def test_full_dispensation(prescription: Prescription, pharmacist: Professional) -> None:
    start = last_sequence()
    client = logged_in(pharmacist)
    # The pharmacist's answer comes before the job: the copy is being prepared.
    with TestCase.captureOnCommitCallbacks() as jobs:
        response = client.post(urls(prescription)["dispense"], full_post())
    assert response.status_code == 303 and response["Location"] == urls(prescription)["viewer"]
    assert len(jobs) == 1 and not CertifiedCopy.objects.exists()
    viewer = text(client.get(urls(prescription)["viewer"]))
    assert "Prescription marquée comme dispensée entièrement. Copie certifiée en préparation…" in viewer
    assert "Copie certifiée en préparation…" in viewer and "Copie certifiée conforme (PDF)" not in viewer
    state_url = (
        urls(prescription)["dispense"] + f"{Dispensation.objects.get().public_id}/copie-certifiee/etat/"
    )
    assert f'hx-get="{state_url}"' in viewer
    pending = text(client.get(state_url))
    assert "Copie certifiée en préparation…" in pending and 'hx-trigger="load delay:2s"' in pending
    for run in jobs:
        run()
    ready = text(client.get(state_url))
    assert "Copie certifiée conforme (PDF)" in ready and "hx-get" not in ready
    assert ready.count("copie-certifiee.pdf") == 1
    prescription.refresh_from_db()
    assert (prescription.dispensation_state, prescription.state_version) == ("dispensed", 1)
    dispensation = Dispensation.objects.get()
    assert (dispensation.kind, dispensation.pharmacy, dispensation.pharmacist_name) == (
        "full",
        "Pharmacie du Globe",
        "Claudine Kremer",
    )
    assert [(x.quantity_delivered, x.quantity_remaining) for x in dispensation.lines.all()] == [
        (3, 0),
        (2, 0),
    ]
    assert [event for event in events_after(start) if event[0] != "document.read"] == SUCCESS
    # Filed as an eDispensation document in the record, under its own type.
    assert dispensation.document is not None
    assert (dispensation.document.type_code, dispensation.document.source_system) == ("60593-1", "eDocuments")
    record = logged_in(pharmacist).get(
        f"/edocuments/patient/{prescription.document.patient.public_id}/?vue=documentaire"
    )
    assert "Dispensations de médicaments (1)" in text(record)
    viewer = text(logged_in(pharmacist).get(urls(prescription)["viewer"]))
    assert "Dispensée entièrement" in viewer and "Copie certifiée conforme (PDF)" in viewer
    assert 'class="dispense-action"' not in viewer  # nothing left to dispense


@pytest.mark.django_db
def test_partial_dispensation_then_the_remainder_by_another_pharmacist(
    peppa: Patient, prescription: Prescription, pharmacist: Professional
) -> None:
    start = last_sequence()
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = logged_in(pharmacist).post(
            urls(prescription)["dispense"], partial_post(prescription, [1, 2])
        )
    assert response.status_code == 303
    prescription.refresh_from_db()
    assert (prescription.dispensation_state, prescription.state_version) == ("partial", 1)
    first = Dispensation.objects.get()
    assert first.kind == "partial"
    assert [
        (x.quantity_prescribed, x.quantity_delivered, x.quantity_remaining) for x in first.lines.all()
    ] == [
        (3, 1, 2),
        (2, 2, 0),
    ]
    assert events_after(start) == SUCCESS
    first_copy = CertifiedCopy.objects.get()
    assert first_copy.is_current

    # The next pharmacist sees what is still owed and delivers the remainder.
    other = pharmacist_with_access(peppa, organisation="Pharmacie de la Gare")
    viewer = text(logged_in(other).get(urls(prescription)["viewer"]))
    assert "Reste à délivrer" in viewer and "Dispensée partiellement" in viewer
    assert "<td><strong>2</strong>" in viewer  # amoxicilline: 2 still owed
    assert 'name="state_version" value="1"' in viewer
    start = last_sequence()
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = logged_in(other).post(urls(prescription)["dispense"], full_post(version=1))
    assert response.status_code == 303
    prescription.refresh_from_db()
    assert (prescription.dispensation_state, prescription.state_version) == ("dispensed", 2)
    second = Dispensation.objects.exclude(pk=first.pk).get()
    assert [(x.quantity_delivered, x.quantity_remaining) for x in second.lines.all()] == [(2, 0), (0, 0)]
    assert events_after(start) == SUCCESS
    first_copy.refresh_from_db()
    assert first_copy.superseded_at is not None and first_copy.superseded_because == "delivery"


@pytest.mark.django_db
def test_partial_grid_delivering_everything_dispenses_fully(
    prescription: Prescription, pharmacist: Professional
) -> None:
    response = logged_in(pharmacist).post(urls(prescription)["dispense"], partial_post(prescription, [3, 2]))
    assert response.status_code == 303
    prescription.refresh_from_db()
    assert prescription.dispensation_state == "dispensed"
    assert Dispensation.objects.get().kind == "full"


@pytest.mark.django_db
def test_over_delivery_is_refused(prescription: Prescription, pharmacist: Professional) -> None:
    before, start = snapshot(prescription), last_sequence()
    response = logged_in(pharmacist).post(urls(prescription)["dispense"], partial_post(prescription, [4, 0]))
    assert response.status_code == 400
    assert "Quantité trop élevée pour « AMOXICILLINE 1 g comprimés » : 4 demandée(s), 3 restant" in (
        text(response)
    )
    assert snapshot(prescription) == before
    assert events_after(start) == [("prescription.dispense", "refused")]


@pytest.mark.django_db
def test_empty_grid_and_missing_acceptance_change_nothing(
    prescription: Prescription, pharmacist: Professional
) -> None:
    client = logged_in(pharmacist)
    before, start = snapshot(prescription), last_sequence()
    response = client.post(urls(prescription)["dispense"], {"kind": "full", "state_version": 0})
    assert response.status_code == 400
    assert "Cochez « Je comprends et j'accepte ce principe. »" in text(response)
    response = client.post(urls(prescription)["dispense"], partial_post(prescription, [0, 0]))
    assert response.status_code == 400
    assert "Indiquez au moins une quantité délivrée" in text(response)
    assert snapshot(prescription) == before
    # The unreadable form and the service's refusal each leave their refused event.
    assert events_after(start) == [("prescription.dispense", "refused"), ("prescription.dispense", "refused")]
    reasons = list(AuditEvent.objects.filter(sequence__gt=start).values_list("details__reason", flat=True))
    assert reasons == ["invalid_form", "nothing_delivered"]


@pytest.mark.django_db
def test_expired_prescription_is_refused(peppa: Patient, pharmacist: Professional) -> None:
    old = submit_prescription(peppa, at=timezone.now() - datetime.timedelta(days=95), document_id="RX-OLD")
    before, start = snapshot(old), last_sequence()
    response = logged_in(pharmacist).post(urls(old)["dispense"], full_post())
    assert response.status_code == 409
    assert "Cette prescription n'est plus valable" in text(response)
    assert snapshot(old) == before
    assert events_after(start) == [("prescription.dispense", "refused")]


@pytest.mark.django_db
def test_already_dispensed_is_refused_with_who_and_when(
    prescription: Prescription, pharmacist: Professional
) -> None:
    client = logged_in(pharmacist)
    assert client.post(urls(prescription)["dispense"], full_post()).status_code == 303
    before, start = snapshot(prescription), last_sequence()
    response = client.post(urls(prescription)["dispense"], full_post(version=1))
    html = text(response)
    assert response.status_code == 409
    when = timezone.localtime(Dispensation.objects.get().dispensed_at).strftime("%d/%m/%Y à %H:%M")
    assert f"déjà été dispensée entièrement le {when} par Claudine Kremer (Pharmacie du Globe)" in html
    assert snapshot(prescription) == before
    assert events_after(start) == [("prescription.dispense", "refused")]


@pytest.mark.django_db
def test_stale_version_is_refused(
    peppa: Patient, prescription: Prescription, pharmacist: Professional
) -> None:
    assert (
        logged_in(pharmacist)
        .post(urls(prescription)["dispense"], partial_post(prescription, [1, 0]))
        .status_code
        == 303
    )
    other = pharmacist_with_access(peppa)
    before, start = snapshot(prescription), last_sequence()
    # Based on version 0: this pharmacist did not see the first delivery.
    response = logged_in(other).post(urls(prescription)["dispense"], partial_post(prescription, [2, 2]))
    assert response.status_code == 409
    html = text(response)
    assert "La prescription a été modifiée entre-temps" in html
    assert 'name="state_version" value="1"' in html  # the form now shows the current state
    assert snapshot(prescription) == before
    assert events_after(start) == [("prescription.dispense", "refused")]


@pytest.mark.django_db
def test_non_pharmacist_gets_no_action_and_is_refused(peppa: Patient, prescription: Prescription) -> None:
    doctor = make_professional("doctor")
    make_grant(doctor, peppa)
    client = logged_in(doctor)
    viewer = text(client.get(urls(prescription)["viewer"]))
    assert "AMOXICILLINE" in viewer and "Marquer comme dispensé" not in viewer
    before, start = snapshot(prescription), last_sequence()
    response = client.post(urls(prescription)["dispense"], full_post())
    assert response.status_code == 403
    assert snapshot(prescription) == before
    assert events_after(start) == [("prescription.dispense", "refused")]
    assert client.get(urls(prescription)["dispense"]).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("grant", ["none", "expired", "own-documents"])
def test_pharmacist_without_a_care_access_is_refused(
    peppa: Patient, prescription: Prescription, grant: str
) -> None:
    pharmacist = make_professional("pharmacist")
    if grant == "expired":
        now = timezone.now()
        make_grant(pharmacist, peppa, granted_at=now - datetime.timedelta(hours=30), expires_at=now)
    elif grant == "own-documents":
        make_grant(pharmacist, peppa, mode=AccessGrant.Mode.OWN_DOCUMENTS)
    before, start = snapshot(prescription), last_sequence()
    response = logged_in(pharmacist).post(urls(prescription)["dispense"], full_post())
    assert response.status_code == 404
    assert "AMOXICILLINE" not in text(response)
    assert snapshot(prescription) == before
    assert events_after(start) == [("prescription.dispense", "refused")]


@pytest.mark.django_db
def test_withdrawal_within_the_window(
    peppa: Patient, prescription: Prescription, pharmacist: Professional
) -> None:
    client = logged_in(pharmacist)
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(urls(prescription)["dispense"], partial_post(prescription, [1, 0]))
    assert response.status_code == 303
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(urls(prescription)["dispense"], partial_post(prescription, [1, 1], 1))
    assert response.status_code == 303
    first, second = Dispensation.objects.order_by("id")
    old_copy = CertifiedCopy.objects.get(dispensation=second)
    assert "Retirer cette dispensation" in text(client.get(urls(prescription)["viewer"]))
    start = last_sequence()
    url = urls(prescription)["dispense"] + f"{second.public_id}/retrait/"
    with TestCase.captureOnCommitCallbacks() as jobs:
        response = client.post(url, {"reason": "Erreur de saisie : mauvais patient"})
    assert response.status_code == 303
    # Until its job runs, the delivery still standing shows its copy being prepared again.
    assert not CertifiedCopy.objects.filter(superseded_at__isnull=True).exists()
    assert "Copie certifiée en préparation…" in text(client.get(urls(prescription)["viewer"]))
    for run in jobs:
        run()
    second.refresh_from_db()
    assert (
        second.withdrawn_at is not None and second.withdrawal_reason == "Erreur de saisie : mauvais patient"
    )
    assert second.withdrawn_by == pharmacist
    prescription.refresh_from_db()
    assert (prescription.dispensation_state, prescription.state_version) == ("partial", 3)
    assert Document.objects.get(pk=second.document_id).status == "entered-in-error"
    old_copy.refresh_from_db()
    assert old_copy.superseded_because == "withdrawal"
    # A new current copy carries the grid of the delivery still standing.
    assert CertifiedCopy.objects.get(superseded_at__isnull=True).dispensation == first
    assert [event for event in events_after(start) if event[0] != "document.read"] == [
        ("dispensation.withdraw", "success"),
        ("dispensation.certify", "success"),
    ]
    viewer = text(client.get(urls(prescription)["viewer"]))
    assert "Retirée le" in viewer and "Erreur de saisie" in viewer

    # Withdrawing the last standing delivery reopens the prescription.
    start = last_sequence()
    url = urls(prescription)["dispense"] + f"{first.public_id}/retrait/"
    with TestCase.captureOnCommitCallbacks(execute=True) as jobs:
        assert client.post(url, {"reason": "Annulation"}).status_code == 303
    assert jobs == []  # no delivery standing: no copy to prepare
    prescription.refresh_from_db()
    assert (prescription.dispensation_state, prescription.state_version) == ("open", 4)
    assert not CertifiedCopy.objects.filter(superseded_at__isnull=True).exists()
    assert events_after(start) == [("dispensation.withdraw", "success")]


@pytest.mark.django_db
def test_withdrawal_refusals(peppa: Patient, prescription: Prescription, pharmacist: Professional) -> None:
    client = logged_in(pharmacist)
    assert client.post(urls(prescription)["dispense"], full_post()).status_code == 303
    dispensation = Dispensation.objects.get()
    url = urls(prescription)["dispense"] + f"{dispensation.public_id}/retrait/"

    before, start = snapshot(prescription), last_sequence()
    response = client.post(url, {"reason": "   "})
    assert response.status_code == 400 and "Le motif du retrait est obligatoire." in text(response)
    other = pharmacist_with_access(peppa)
    response = logged_in(other).post(url, {"reason": "Pas le mien"})
    assert response.status_code == 403
    assert snapshot(prescription) == before
    assert events_after(start) == [("dispensation.withdraw", "refused")] * 2

    # Out of the window (24 hours by default).
    Dispensation.objects.filter(pk=dispensation.pk).update(
        dispensed_at=timezone.now() - datetime.timedelta(hours=25)
    )
    assert "Retirer cette dispensation" not in text(client.get(urls(prescription)["viewer"]))
    before, start = snapshot(prescription), last_sequence()
    response = client.post(url, {"reason": "Trop tard"})
    assert response.status_code == 409
    assert "Le délai de retrait (24 heures après la dispensation) a expiré" in text(response)
    assert snapshot(prescription) == before
    assert events_after(start) == [("dispensation.withdraw", "refused")]


@pytest.mark.django_db
def test_dispense_page_without_javascript(prescription: Prescription, pharmacist: Professional) -> None:
    start = last_sequence()
    response = logged_in(pharmacist).get(urls(prescription)["dispense"])
    html = text(response)
    assert response.status_code == 200
    assert "Marquer comme dispensé" in html and WARNING in html and "Valider" in html
    assert events_after(start) == [("document.read", "success")]


@pytest.mark.django_db
def test_withdrawal_page_only_for_its_pharmacist_and_traced(
    peppa: Patient, prescription: Prescription, pharmacist: Professional
) -> None:
    client = logged_in(pharmacist)
    assert client.post(urls(prescription)["dispense"], full_post()).status_code == 303
    dispensation = Dispensation.objects.get()
    url = urls(prescription)["dispense"] + f"{dispensation.public_id}/retrait/"
    start = last_sequence()
    assert client.get(url).status_code == 200
    assert events_after(start) == [("document.read", "success")]
    nurse = make_professional("nurse")
    make_grant(nurse, peppa)
    for other in (pharmacist_with_access(peppa), nurse):
        start = last_sequence()
        response = logged_in(other).get(url)
        assert response.status_code == 403 and "Retirer" not in text(response)
        assert events_after(start) == [("document.read", "refused")]


@pytest.mark.django_db
def test_non_pharmacist_on_the_dispense_page_is_refused_and_traced(
    peppa: Patient, prescription: Prescription
) -> None:
    doctor = make_professional("doctor")
    make_grant(doctor, peppa)
    start = last_sequence()
    response = logged_in(doctor).get(urls(prescription)["dispense"])
    assert response.status_code == 403
    assert events_after(start) == [("document.read", "refused")]
