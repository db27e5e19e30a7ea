"""The record page, the viewer and the raw content: happy paths and every refusal."""

import datetime
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from esante.access.models import AccessGrant, PatientBlock
from esante.audit.models import AuditEvent
from esante.documents.models import Document
from esante.documents.services import document_submit
from esante.patients.models import Patient
from tests.access.factories import make_grant, make_professional

from . import pdfs
from .conftest import AT, PEPPA, make_prescription

# A clean PDF with markup in its page: whatever sniffs it as HTML must not run it.
PDF = pdfs.clean_pdf(b"<script>alert(1)</script>")


def submit(patient: Patient, **overrides: Any) -> Document:
    values: dict[str, Any] = {
        "content": b"Texte du document.",
        "patient_matricule": patient.matricule,
        "type_code": "11488-4",
        "title": "Consultation",
        "clinical_at": AT,
        "author_name": "Dr Autre",
        "source_system": "CHL",
    }
    values.update(overrides)
    return document_submit(**values)


@pytest.fixture
def record(peppa: Patient) -> dict[str, Any]:
    prescription = document_submit(content=make_prescription(), source_system="eServices")
    pdf = submit(peppa, content=PDF, type_code="18842-5", title="Lettre de sortie PDF")
    psy = submit(peppa, type_code="11492-6", title="Psychiatrie secrète", confidentiality="N")
    very = submit(peppa, type_code="11502-2", title="Labo très restreint", confidentiality="V")
    hidden = submit(peppa, type_code="11369-6", title="Vaccin masqué", hidden_by_patient=True)
    return {"prescription": prescription, "pdf": pdf, "psy": psy, "very": very, "hidden": hidden}


def logged_in(professional: Any) -> Client:
    client = Client()
    client.force_login(professional.user)
    return client


def events_after(start: int) -> list[tuple[str, str]]:
    return list(
        AuditEvent.objects.filter(sequence__gt=start).order_by("sequence").values_list("action", "outcome")
    )


def last_sequence() -> int:
    return AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0


@pytest.mark.django_db
def test_documentary_view_shows_the_guide_tree_for_a_pharmacist(
    peppa: Patient, record: dict[str, Any]
) -> None:
    pharmacist = make_professional("pharmacist")
    make_grant(pharmacist, peppa)
    start = last_sequence()
    page = logged_in(pharmacist).get(f"/edocuments/patient/{peppa.public_id}/?vue=documentaire")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Prescription (1)" in html and "Traitements médicamenteux (1)" in html
    assert "25/11/2026 22:14" in html and "eServices" in html
    for title in ("Psychiatrie secrète", "Labo très restreint", "Vaccin masqué", "Lettre de sortie PDF"):
        assert title not in html  # the pharmacist's matrix row and the confidentiality levels
    assert "Vue 360" in html and "Rechercher un document" in html and "Saisir mots" in html
    for label in ("Par type", "Par date", "Par classeurs", "Nouveaux", "Par auteurs"):
        assert label in html
    assert events_after(start) == [("record.open", "success")]


@pytest.mark.django_db
def test_doctor_sees_more_but_never_v_or_hidden(peppa: Patient, record: dict[str, Any]) -> None:
    doctor = make_professional("doctor")
    make_grant(doctor, peppa)
    html = logged_in(doctor).get(f"/edocuments/patient/{peppa.public_id}/?vue=documentaire").content.decode()
    assert "Psychiatrie secrète" in html and "Lettre de sortie PDF" in html
    assert "Labo très restreint" not in html and "Vaccin masqué" not in html


@pytest.mark.django_db
def test_own_documents_mode_shows_only_authored(peppa: Patient, record: dict[str, Any]) -> None:
    doctor = make_professional("doctor")
    mine = submit(peppa, title="Ma note", author=doctor, author_name="")
    make_grant(doctor, peppa, mode=AccessGrant.Mode.OWN_DOCUMENTS)
    html = logged_in(doctor).get(f"/edocuments/patient/{peppa.public_id}/?vue=documentaire").content.decode()
    assert "Ma note" in html and "Consultation (1)" not in html.replace("Notes de consultation (1)", "")
    assert "Lettre de sortie PDF" not in html and mine.author == doctor


@pytest.mark.django_db
def test_viewer_renders_cda_and_traces_the_read(peppa: Patient, record: dict[str, Any]) -> None:
    pharmacist = make_professional("pharmacist")
    make_grant(pharmacist, peppa)
    document = record["prescription"]
    start = last_sequence()
    page = logged_in(pharmacist).get(f"/edocuments/patient/{peppa.public_id}/document/{document.public_id}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "AMOXICILLINE 1 g" in html and "Non dispensée" in html and "<table>" in html
    event = AuditEvent.objects.get(sequence=start + 1)
    assert (event.action, event.outcome, event.object_id, event.patient) == (
        "document.read",
        "success",
        str(document.public_id),
        peppa,
    )


@pytest.mark.django_db
def test_content_is_served_with_its_type_and_a_policy_that_runs_nothing(
    peppa: Patient, record: dict[str, Any]
) -> None:
    doctor = make_professional("doctor")
    make_grant(doctor, peppa)
    client = logged_in(doctor)
    pdf = client.get(f"/edocuments/patient/{peppa.public_id}/document/{record['pdf'].public_id}/contenu")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf" and pdf.getvalue() == PDF
    assert (
        pdf["X-Content-Type-Options"] == "nosniff" and "default-src 'none'" in pdf["Content-Security-Policy"]
    )
    assert pdf["Content-Disposition"].startswith("inline")
    cda = client.get(f"/edocuments/patient/{peppa.public_id}/document/{record['psy'].public_id}/contenu")
    assert cda["Content-Type"] == "text/plain; charset=utf-8" and "sandbox" in cda["Content-Security-Policy"]
    assert cda["Content-Disposition"].startswith("attachment")


@pytest.mark.parametrize(
    ("name", "content_type", "disposition"),
    [
        ("pdf", "application/pdf", "inline"),
        ("prescription", "application/xml; charset=utf-8", "attachment"),
        ("psy", "text/plain; charset=utf-8", "attachment"),
    ],
)
@pytest.mark.django_db
def test_every_stored_document_is_served_sandboxed_and_nosniff(
    peppa: Patient, record: dict[str, Any], name: str, content_type: str, disposition: str
) -> None:
    doctor = make_professional("doctor")
    make_grant(doctor, peppa)
    document = record[name]
    url = f"/edocuments/patient/{peppa.public_id}/document/{document.public_id}/contenu"
    response = logged_in(doctor).get(url)
    assert response.status_code == 200 and response["Content-Type"] == content_type
    directives = [part.strip() for part in response["Content-Security-Policy"].split(";")]
    assert "sandbox" in directives and "default-src 'none'" in directives
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"].startswith(disposition)
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
def test_keyword_search_is_accent_insensitive_and_traced(peppa: Patient, record: dict[str, Any]) -> None:
    doctor = make_professional("doctor")
    make_grant(doctor, peppa)
    submit(peppa, content="Fracture du fémur gauche.".encode(), title="Radio", type_code="18748-4")
    client = logged_in(doctor)
    start = last_sequence()
    html = client.get(f"/edocuments/patient/{peppa.public_id}/?vue=documentaire&mots=femur").content.decode()
    assert "Radio" in html and "Lettre de sortie PDF" not in html and "1 document pour « femur »" in html
    assert events_after(start) == [("record.open", "success"), ("record.search", "success")]
    html = client.get(f"/edocuments/patient/{peppa.public_id}/?vue=documentaire&mots=amoxi").content.decode()
    assert "Traitements médicamenteux (1)" in html  # prefix search over the extracted CDA text


@pytest.mark.django_db
def test_filters_and_new_documents_across_two_visits(peppa: Patient, record: dict[str, Any]) -> None:
    doctor = make_professional("doctor")
    make_grant(doctor, peppa)
    client = logged_in(doctor)
    url = f"/edocuments/patient/{peppa.public_id}/"
    client.get(url)  # first visit
    submit(peppa, title="Nouvelle consultation")
    html = client.get(
        url + "?vue=documentaire&nouveaux=1"
    ).content.decode()  # second visit: new since the first
    assert "Nouvelle consultation" in html and "Lettre de sortie PDF" not in html
    html = client.get(url + "?vue=documentaire&type=18842-5").content.decode()
    assert "Lettre de sortie PDF" in html and "Nouvelle consultation" not in html
    start = last_sequence()
    partial = client.get(url + "?vue=documentaire&classeur=hospital", HTTP_HX_REQUEST="true")
    assert events_after(start) == [("record.view", "success")]  # a partial re-read is traced too
    viewed = AuditEvent.objects.get(sequence=start + 1)
    assert viewed.details["filters"] == {"classeur": "hospital"} and viewed.details["channel"] == "portal"
    assert "<html" not in partial.content.decode() and "Lettre de sortie PDF" in partial.content.decode()


@pytest.mark.django_db
def test_record_page_queries_are_constant(peppa: Patient) -> None:
    doctor = make_professional("doctor")
    make_grant(doctor, peppa)
    client = logged_in(doctor)
    url = f"/edocuments/patient/{peppa.public_id}/?vue=documentaire"

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        return len(queries)

    submit(peppa, title="Un")
    count()  # the session's first activity is recorded here
    few = count()
    rows = [
        Document(
            patient=peppa,
            type_code="11488-4",
            class_code="report",
            title=f"Note {n}",
            author_name="Dr A",
            source_system="CHL",
            binder="general",
            media_type="text/plain",
            content="x",
            sha256="0" * 64,
            size=1,
            clinical_at=AT - datetime.timedelta(hours=n),
        )
        for n in range(1000)
    ]
    Document.objects.bulk_create(rows)
    assert count() == few


def _no_grant(professional: Any, patient: Patient) -> None:
    return None


def _expired(professional: Any, patient: Patient) -> None:
    past = timezone.now() - datetime.timedelta(days=2)
    make_grant(professional, patient, granted_at=past, expires_at=past + datetime.timedelta(hours=1))


def _revoked(professional: Any, patient: Patient) -> None:
    make_grant(professional, patient, revoked_at=timezone.now())


def _blocked(professional: Any, patient: Patient) -> None:
    make_grant(professional, patient)
    PatientBlock.objects.create(patient=patient, professional=professional)


def _closed(professional: Any, patient: Patient) -> None:
    make_grant(professional, patient)
    Patient.objects.filter(pk=patient.pk).update(dossier_state="closed")


@pytest.mark.parametrize("setup", [_no_grant, _expired, _revoked, _blocked, _closed])
@pytest.mark.parametrize("target", ["record", "viewer", "content"])
@pytest.mark.django_db
def test_refusals_leak_nothing_and_write_only_their_event(
    peppa: Patient, record: dict[str, Any], setup: Any, target: str
) -> None:
    pharmacist = make_professional("pharmacist")
    setup(pharmacist, peppa)
    document = record["prescription"]
    url = {
        "record": f"/edocuments/patient/{peppa.public_id}/",
        "viewer": f"/edocuments/patient/{peppa.public_id}/document/{document.public_id}/",
        "content": f"/edocuments/patient/{peppa.public_id}/document/{document.public_id}/contenu",
    }[target]
    counts = (Document.objects.count(), AccessGrant.objects.count())
    start = last_sequence()
    response = logged_in(pharmacist).get(url)
    body = response.content.decode(errors="replace")
    assert response.status_code == 404
    for secret in (PEPPA, "PIG", "Peppa", "AMOXICILLINE", "1664927202"):
        assert secret not in body
    assert (Document.objects.count(), AccessGrant.objects.count()) == counts
    events = events_after(start)
    assert len(events) == 1 and events[0][1] == "refused"


@pytest.mark.parametrize("title", ["Psychiatrie secrète", "Labo très restreint", "Vaccin masqué"])
@pytest.mark.django_db
def test_pharmacist_cannot_open_documents_outside_the_matrix(
    peppa: Patient, record: dict[str, Any], title: str
) -> None:
    pharmacist = make_professional("pharmacist")
    make_grant(pharmacist, peppa)
    document = Document.objects.get(title=title)
    client = logged_in(pharmacist)
    start = last_sequence()
    for suffix in ("", "contenu"):
        response = client.get(f"/edocuments/patient/{peppa.public_id}/document/{document.public_id}/{suffix}")
        assert response.status_code == 404 and title not in response.content.decode(errors="replace")
    assert [outcome for _, outcome in events_after(start)] == ["refused", "refused"]


@pytest.mark.django_db
def test_anonymous_is_sent_to_login(peppa: Patient, record: dict[str, Any]) -> None:
    response = Client().get(f"/edocuments/patient/{peppa.public_id}/")
    assert response.status_code == 302 and "PIG" not in response.content.decode()


@pytest.mark.django_db
def test_vue_360_is_the_default_with_prescriptions_and_their_status(
    peppa: Patient, record: dict[str, Any]
) -> None:
    pharmacist = make_professional("pharmacist")
    make_grant(pharmacist, peppa)
    html = logged_in(pharmacist).get(f"/edocuments/patient/{peppa.public_id}/").content.decode()
    assert 'aria-current="page">Vue 360' in html
    assert "Derniers documents par classe" in html and "Non dispensée" in html
    assert "Ordonnance médicamenteuse" in html and "Psychiatrie secrète" not in html


@pytest.mark.django_db
def test_dispense_icon_only_for_pharmacists_with_care_access(peppa: Patient, record: dict[str, Any]) -> None:
    pharmacist, doctor = make_professional("pharmacist"), make_professional("doctor")
    make_grant(pharmacist, peppa)
    make_grant(doctor, peppa)
    url = f"/edocuments/patient/{peppa.public_id}/?vue=documentaire"
    dispense = f"/document/{record['prescription'].public_id}/dispensation/"
    assert dispense in logged_in(pharmacist).get(url).content.decode()
    assert dispense not in logged_in(doctor).get(url).content.decode()


@pytest.mark.parametrize("profession", ["doctor", "pharmacist"])
@pytest.mark.django_db
def test_record_page_queries_do_not_grow_with_documents_types_or_prescriptions(
    peppa: Patient, profession: str
) -> None:
    """Every type of the tree, prescriptions with a status and a dispense icon, 60 documents a
    type or 1 (a window of 20 shown): the same queries, whatever the record holds."""
    from esante.documents.models import Prescription
    from esante.documents.types import DOCUMENT_TYPES

    viewer = make_professional(profession)
    make_grant(viewer, peppa)
    client = logged_in(viewer)
    url = f"/edocuments/patient/{peppa.public_id}/?vue=documentaire"

    def load(per_type: int) -> None:
        rows = Document.objects.bulk_create(
            Document(
                patient=peppa,
                type_code=code,
                class_code=str(document_type.class_code),
                title=f"{code} {n}",
                author_name=f"Dr {n % 5}",
                source_system="CHL",
                binder="general",
                media_type="text/plain",
                content="x",
                sha256="0" * 64,
                size=1,
                hidden_by_patient=n % 7 == 3,
                confidentiality="R" if n % 11 == 5 else "N",
                clinical_at=AT - datetime.timedelta(hours=n),
            )
            for code, document_type in DOCUMENT_TYPES.items()
            for n in range(per_type)
        )
        Prescription.objects.bulk_create(
            Prescription(document=row, prescribed_at=AT, prescriber_name="Dr X", dispensation_state=state)
            for row, state in zip(
                (row for row in rows if row.type_code == "57833-6"),
                ["open", "partial", "dispensed"] * per_type,
                strict=False,
            )
        )

    def count() -> tuple[int, str]:
        with CaptureQueriesContext(connection) as queries:
            page = client.get(url)
        assert page.status_code == 200
        return len(queries), page.content.decode()

    load(1)
    count()  # the session's first activity is recorded here
    few, html = count()
    load(60)
    many, html = count()
    assert many == few
    shown = html.count('<span class="doc-meta">CHL · ')
    assert 20 < shown <= 20 * len(DOCUMENT_TYPES)  # a window of each type, not the 60
    assert ("dispense-icon" in html) is (profession == "pharmacist")
