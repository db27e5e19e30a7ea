"""« Mon dossier », « Mon journal d'accès », « Mes choix »: what the patient sees, what each
choice does to the professionals' access, and the refusals (404, nothing leaked, traced)."""

import csv
import datetime
import html
import io
import uuid

import pytest
from django.test import Client
from django.utils import timezone

from esante.access.models import PatientBlock
from esante.audit.catalogue import AuditAction
from esante.audit.models import AuditEvent
from esante.audit.services import audit_record, audit_record_many
from esante.dispensing.services import prescription_mark_dispensed
from esante.espace.models import PatientAccount
from esante.espace.selectors import JOURNAL_PAGE_SIZE
from esante.patients.models import Patient
from tests.access.factories import make_grant, make_patient, make_professional
from tests.dispensing.conftest import submit_prescription

from .conftest import active_account, events_after, last_sequence, logged_in_patient

pytestmark = pytest.mark.django_db


def text(response) -> str:  # type: ignore[no-untyped-def]
    return html.unescape(response.content.decode())


def _pharmacist_visit(patient: Patient):  # type: ignore[no-untyped-def]
    """A pharmacist opens the record, reads the prescription and dispenses it (the guide's walk)."""
    prescription = submit_prescription(patient)
    pharmacist = make_professional("pharmacist", last_name="Schmit", organisation="Pharmacie du Globe")
    browser = Client()
    browser.force_login(pharmacist.user)
    browser.post("/edocuments/recherche/", {"matricule": patient.matricule})
    response = browser.post(
        f"/edocuments/patient/{patient.public_id}/acces/",
        {"mode": "care", "motif_choice": "dispensation", "accept_conditions": "on"},
    )
    assert response.status_code == 302, response.content
    browser.get(f"/edocuments/patient/{patient.public_id}/")
    browser.get(f"/edocuments/patient/{patient.public_id}/document/{prescription.document.public_id}/")
    prescription_mark_dispensed(
        prescription=prescription, pharmacist=pharmacist, kind="full", based_on_version=0
    )
    return pharmacist, prescription, browser


def test_mon_dossier_shows_the_documents_and_the_prescription_state() -> None:
    account = active_account()
    pharmacist, prescription, _ = _pharmacist_visit(account.patient)
    start = last_sequence()
    page = text(logged_in_patient(account).get("/patient/dossier/"))
    assert prescription.document.title in page
    assert "Reste à délivrer" in page
    assert "Pharmacie du Globe" in page
    assert events_after(start) == [("espace.record.view", "success")]


def test_the_patient_reads_their_own_document_even_hidden() -> None:
    account = active_account()
    prescription = submit_prescription(account.patient)
    document = prescription.document
    document.hidden_by_patient = True
    document.save()
    browser = logged_in_patient(account)
    start = last_sequence()
    assert browser.get(f"/patient/dossier/document/{document.public_id}/").status_code == 200
    content = browser.get(f"/patient/dossier/document/{document.public_id}/contenu")
    assert content.status_code == 200 and "sandbox" in content["Content-Security-Policy"]
    assert events_after(start) == [("espace.document.read", "success")] * 2


def test_another_patients_document_is_not_found_nothing_leaks_and_the_refusal_is_traced() -> None:
    account = active_account()
    other = make_patient(birth_name="Wolf", first_names="Zoé")
    theirs = submit_prescription(other, document_id="RX-2").document
    browser = logged_in_patient(account)
    for url in (
        f"/patient/dossier/document/{theirs.public_id}/",
        f"/patient/dossier/document/{theirs.public_id}/contenu",
        f"/patient/dossier/document/{theirs.public_id}/masquer/",
        f"/patient/dossier/document/{uuid.uuid4()}/",
    ):
        start = last_sequence()
        response = browser.get(url)
        assert response.status_code == 404, url
        body = text(response)
        assert theirs.title not in body and "Wolf" not in body and other.matricule not in body
        assert events_after(start) == [("espace.not_found", "refused")], url
    start = last_sequence()
    assert browser.post(f"/patient/dossier/document/{theirs.public_id}/masquer/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.hidden_by_patient is False
    assert events_after(start) == [("espace.not_found", "refused")]
    refusal = AuditEvent.objects.filter(action="espace.not_found").last()
    assert refusal is not None and refusal.patient_id == account.patient_id  # never the other patient


def test_the_journal_shows_the_pharmacists_access_and_dispensation_in_plain_words() -> None:
    account = active_account()
    _pharmacist_visit(account.patient)
    page = text(logged_in_patient(account).get("/patient/journal/"))
    assert "SCHMIT Test" in page
    assert "Pharmacien, Pharmacie du Globe" in page
    assert AuditAction.PRESCRIPTION_DISPENSE.fr in page
    assert AuditAction.RECORD_OPEN.fr in page
    assert AuditAction.DOCUMENT_READ.fr in page
    assert AuditAction.ACCESS_GRANT.fr in page and "Délivrance de médicaments" in page


def test_the_journal_never_shows_another_patients_events() -> None:
    account = active_account()
    other = make_patient(birth_name="Wolf", first_names="Zoé")
    _pharmacist_visit(other)
    page = text(logged_in_patient(account).get("/patient/journal/"))
    assert "SCHMIT" not in page
    csv_body = b"".join(
        logged_in_patient(account).get("/patient/journal/export.csv").streaming_content
    ).decode()
    assert "SCHMIT" not in csv_body


def test_emergency_accesses_are_highlighted_and_the_motif_shown() -> None:
    account = active_account()
    doctor = make_professional("doctor", last_name="Urgentiste")
    audit_record(
        action=AuditAction.ACCESS_EMERGENCY,
        actor=doctor.user,
        patient=account.patient,
        motif="Patient inconscient aux urgences",
        details={"mode": "emergency"},
    )
    page = text(logged_in_patient(account).get("/patient/journal/"))
    assert 'class="emergency"' in page
    assert "Accès en urgence" in page
    assert "Patient inconscient aux urgences" in page


def test_the_journal_filters_by_kind_professional_and_period_and_pages() -> None:
    account = active_account()
    pharmacist, _, _ = _pharmacist_visit(account.patient)
    doctor = make_professional("doctor", last_name="Medecin")
    make_grant(doctor, account.patient)
    audit_record(action=AuditAction.RECORD_OPEN, actor=doctor.user, patient=account.patient)
    browser = logged_in_patient(account)
    only_dispensations = text(browser.get("/patient/journal/", {"type": "dispensations"}))
    assert AuditAction.PRESCRIPTION_DISPENSE.fr in only_dispensations
    assert AuditAction.RECORD_OPEN.fr not in only_dispensations
    only_doctor = text(browser.get("/patient/journal/", {"professionnel": doctor.matricule}))
    assert "MEDECIN" in only_doctor and "SCHMIT" not in only_doctor.split("<table")[1]
    tomorrow = (timezone.localdate() + datetime.timedelta(days=1)).isoformat()
    future = text(browser.get("/patient/journal/", {"du": tomorrow}))
    assert "Aucun événement pour ces critères" in future
    # Paging: more than a page of events.
    for _ in range(JOURNAL_PAGE_SIZE + 5):
        audit_record(action=AuditAction.RECORD_VIEW, actor=doctor.user, patient=account.patient)
    first = text(browser.get("/patient/journal/"))
    assert "Accès plus anciens" in first
    before = first.split("avant=")[1].split('"')[0]
    second = browser.get("/patient/journal/", {"avant": before})
    assert second.status_code == 200 and AuditAction.RECORD_OPEN.fr in text(second)
    # A number beyond any id reads from the newest (no database error).
    beyond = browser.get("/patient/journal/", {"avant": "9" * 30})
    assert beyond.status_code == 200 and "Accès plus anciens" in text(beyond)


def test_the_journal_filter_bar_keeps_what_was_asked_and_says_what_was_refused() -> None:
    account = active_account()
    pharmacist, _, _ = _pharmacist_visit(account.patient)
    browser = logged_in_patient(account)
    unfiltered = text(browser.get("/patient/journal/"))
    for field in ('<input type="date" name="du" id="id_du" value="">', '<select name="professionnel"'):
        assert field in unfiltered
    # Every professional who had an access is a choice, named as the register names them.
    assert f'<option value="{pharmacist.matricule}">SCHMIT' in unfiltered
    asked = text(
        browser.get("/patient/journal/", {"type": "dispensations", "professionnel": pharmacist.matricule})
    )
    assert '<option value="dispensations" selected>Prescriptions et délivrances</option>' in asked
    assert f'<option value="{pharmacist.matricule}" selected>' in asked
    # A date that is not one: the form's own message above the field, and no filter applied.
    refused = text(browser.get("/patient/journal/", {"du": "31/02/2026"}))
    assert "Saisissez une date valide." in refused.split('id="id_du"')[0]
    assert 'value="31/02/2026"' in refused
    assert AuditAction.PRESCRIPTION_DISPENSE.fr in refused
    # A kind or a professional not among the choices, an impossible ISO date: refused the same way.
    for name, value in (("type", "inconnu"), ("professionnel", "1900010100000"), ("au", "2026-02-31")):
        refused = text(browser.get("/patient/journal/", {name: value}))
        assert "errorlist" in refused.split(f'id="id_{name}"')[0], name
        assert AuditAction.PRESCRIPTION_DISPENSE.fr in refused, name


def test_the_journal_page_costs_the_same_queries_whatever_the_number_of_events() -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    account = active_account()
    _pharmacist_visit(account.patient)
    browser = logged_in_patient(account)
    browser.get("/patient/journal/")
    with CaptureQueriesContext(connection) as few:
        assert browser.get("/patient/journal/").status_code == 200
    # Many more events, by many more professionals, each naming a document.
    for n in range(JOURNAL_PAGE_SIZE):
        doctor = make_professional("doctor", last_name=f"Medecin{n}")
        make_grant(doctor, account.patient)
        audit_record(
            action=AuditAction.DOCUMENT_READ,
            actor=doctor.user,
            patient=account.patient,
            object_type="document",
            object_id=str(uuid.uuid4()),
        )
    with CaptureQueriesContext(connection) as many:
        page = text(browser.get("/patient/journal/"))
    assert "MEDECIN49" in page
    # At most the two lookups a page may need beyond the first (documents named, other actors).
    assert len(many) <= len(few) + 2, [q["sql"][:120] for q in many.captured_queries]


def _journal_queries(browser: Client, url: str) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = browser.get(url)
    assert response.status_code == 200, url
    return [q["sql"] for q in captured.captured_queries]


def test_every_journal_page_costs_exactly_the_same_queries_at_two_numbers_of_events() -> None:
    account = active_account()
    pharmacist = make_professional("pharmacist", last_name="Schmit")
    doctor = make_professional("doctor", last_name="Medecin")
    for professional in (pharmacist, doctor):
        make_grant(professional, account.patient)
    browser = logged_in_patient(account)

    def add(count: int) -> None:
        for professional in (pharmacist, doctor):
            for action in (AuditAction.RECORD_VIEW, AuditAction.PRESCRIPTION_DISPENSE):
                audit_record_many(
                    action=action, entries=[(account.patient.pk, {})] * count, actor=professional.user
                )

    def counts() -> dict[str, int]:
        middle = AuditEvent.objects.filter(patient=account.patient).order_by("-id")[JOURNAL_PAGE_SIZE].pk
        urls = {
            "first page": "/patient/journal/",
            "one professional": f"/patient/journal/?professionnel={doctor.matricule}",
            "older page": f"/patient/journal/?avant={middle}",
            "one kind": "/patient/journal/?type=dispensations",
        }
        browser.get("/patient/journal/")
        return {name: len(_journal_queries(browser, url)) for name, url in urls.items()}

    add(40)
    few = counts()
    add(400)
    many = counts()
    assert many == few
    # The session, the user, the account, the filter's professionals, the page, and the page's
    # own trace (on SQLite: BEGIN, the chain head, the insert, its update, COMMIT); nothing else.
    assert set(few.values()) == {len(_journal_queries(browser, "/patient/journal/"))}
    assert all(count <= 10 for count in few.values()), few


def test_the_older_page_and_export_links_keep_the_filters_as_asked() -> None:
    account = active_account()
    doctor = make_professional("doctor", last_name="Medecin")
    make_grant(doctor, account.patient)
    audit_record_many(
        action=AuditAction.PRESCRIPTION_DISPENSE,
        entries=[(account.patient.pk, {})] * (JOURNAL_PAGE_SIZE + 5),
        actor=doctor.user,
    )
    audit_record(action=AuditAction.RECORD_OPEN, actor=doctor.user, patient=account.patient)
    browser = logged_in_patient(account)
    for query in ("", "?type=dispensations"):
        page = browser.get(f"/patient/journal/{query}").content.decode()
        older = html.unescape(page.split('<a class="button secondary" href="')[1].split('"')[0])
        assert older.startswith("?") and "avant=" in older
        assert ("type=dispensations" in older) == bool(query)
        # The link as the browser follows it: the older lines, still filtered.
        second = text(browser.get(f"/patient/journal/{older}"))
        assert AuditAction.PRESCRIPTION_DISPENSE.fr in second.split("<table")[1]
        assert (AuditAction.RECORD_OPEN.fr in second.split("<table")[1]) is False
        exports = html.unescape(page.split('<p class="exports">')[1].split("</p>")[0])
        assert f'href="/patient/journal/export.csv{query}"' in exports
        assert f'href="/patient/journal/export.pdf{query}"' in exports


def test_the_journal_exports_as_csv_and_pdf_and_each_export_is_traced() -> None:
    account = active_account()
    _pharmacist_visit(account.patient)
    browser = logged_in_patient(account)
    start = last_sequence()
    response = browser.get("/patient/journal/export.csv")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode()), delimiter=";"))
    assert rows[0][:3] == ["N°", "Date", "Qui"]
    assert any(row[2] == "SCHMIT Test" and row[5] == AuditAction.PRESCRIPTION_DISPENSE.fr for row in rows)
    pdf = browser.get("/patient/journal/export.pdf")
    assert pdf.content.startswith(b"%PDF")
    assert events_after(start) == [("journal.export", "success")] * 2


def test_blocking_a_professional_cuts_their_access_at_once_and_is_in_the_journal() -> None:
    account = active_account()
    pharmacist, prescription, pro_browser = _pharmacist_visit(account.patient)
    record_url = f"/edocuments/patient/{account.patient.public_id}/"
    assert pro_browser.get(record_url).status_code == 200
    browser = logged_in_patient(account)
    search = text(browser.get("/patient/choix/", {"nom": "Schm"}))
    assert f"/patient/choix/bloquer/{pharmacist.pk}/" in search
    confirm = text(browser.get(f"/patient/choix/bloquer/{pharmacist.pk}/"))
    assert "ne pourra plus ouvrir votre dossier" in confirm
    assert not PatientBlock.objects.exists()  # the confirmation page writes nothing
    start = last_sequence()
    assert browser.post(f"/patient/choix/bloquer/{pharmacist.pk}/").status_code == 302
    assert events_after(start) == [("patient.block", "success")]
    # The professional now gets the same 404 as for a stranger's record.
    response = pro_browser.get(record_url)
    assert response.status_code == 404
    assert account.patient.birth_name not in text(response)
    doc = pro_browser.get(f"{record_url}document/{prescription.document.public_id}/")
    assert doc.status_code == 404
    assert "Refus d'un professionnel par le patient" in text(browser.get("/patient/journal/"))
    # Lifting it gives the access back.
    block = PatientBlock.objects.get()
    assert browser.post(f"/patient/choix/debloquer/{block.pk}/").status_code == 302
    assert pro_browser.get(record_url).status_code == 200


def test_a_patient_cannot_lift_another_patients_block() -> None:
    account = active_account()
    other = make_patient(birth_name="Wolf")
    pro = make_professional()
    block = PatientBlock.objects.create(patient=other, professional=pro)
    start = last_sequence()
    response = logged_in_patient(account).post(f"/patient/choix/debloquer/{block.pk}/")
    assert response.status_code == 404
    block.refresh_from_db()
    assert block.lifted_at is None
    assert events_after(start) == [("espace.not_found", "refused")]


def test_hiding_a_document_hides_it_from_professionals_but_its_author() -> None:
    account = active_account()
    pharmacist, prescription, pro_browser = _pharmacist_visit(account.patient)
    document = prescription.document
    url = f"/edocuments/patient/{account.patient.public_id}/document/{document.public_id}/"
    assert pro_browser.get(url).status_code == 200
    browser = logged_in_patient(account)
    assert "aucun professionnel ne verra ce document" in text(
        browser.get(f"/patient/dossier/document/{document.public_id}/masquer/")
    )
    start = last_sequence()
    browser.post(f"/patient/dossier/document/{document.public_id}/masquer/")
    assert events_after(start) == [("document.hide", "success")]
    assert pro_browser.get(url).status_code == 404
    browser.post(f"/patient/dossier/document/{document.public_id}/afficher/")
    assert pro_browser.get(url).status_code == 200


def test_closing_the_record_shuts_out_every_professional_and_reopening_lets_them_back() -> None:
    account = active_account()
    _, _, pro_browser = _pharmacist_visit(account.patient)
    record_url = f"/edocuments/patient/{account.patient.public_id}/"
    browser = logged_in_patient(account)
    assert "même en urgence" in text(browser.get("/patient/choix/fermer/"))
    start = last_sequence()
    browser.post("/patient/choix/fermer/")
    assert events_after(start) == [("record.oppose", "success")]
    assert Patient.objects.get(pk=account.patient_id).dossier_state == Patient.DossierState.OPPOSED
    assert pro_browser.get(record_url).status_code == 404
    # The patient still sees their record.
    assert browser.get("/patient/dossier/").status_code == 200
    browser.post("/patient/choix/rouvrir/")
    assert pro_browser.get(record_url).status_code == 200


def test_a_record_closed_by_the_agency_cannot_be_reopened_by_the_patient() -> None:
    account = active_account()
    Patient.objects.filter(pk=account.patient_id).update(dossier_state=Patient.DossierState.CLOSED)
    start = last_sequence()
    response = logged_in_patient(account).post("/patient/choix/rouvrir/", follow=True)
    assert "fermé par l'Agence eSanté" in text(response)
    assert Patient.objects.get(pk=account.patient_id).dossier_state == Patient.DossierState.CLOSED
    assert events_after(start) == []


def test_notifications_need_an_address_of_that_kind() -> None:
    account = active_account()
    browser = logged_in_patient(account)
    start = last_sequence()
    browser.post("/patient/choix/notifications/", {"channel": "email"})
    assert PatientAccount.objects.get(pk=account.pk).notify_channel == "email"
    assert events_after(start) == [("espace.notifications", "success")]
    start = last_sequence()
    response = browser.post("/patient/choix/notifications/", {"channel": "sms"}, follow=True)
    assert "Aucun numéro de mobile" in text(response)
    assert PatientAccount.objects.get(pk=account.pk).notify_channel == "email"
    assert events_after(start) == []


def test_every_choice_needs_the_csrf_token() -> None:
    account = active_account()
    pro = make_professional()
    document = submit_prescription(account.patient).document
    browser = logged_in_patient(account, enforce_csrf_checks=True)
    start = last_sequence()
    for url in (
        f"/patient/choix/bloquer/{pro.pk}/",
        f"/patient/dossier/document/{document.public_id}/masquer/",
        "/patient/choix/fermer/",
        "/patient/choix/notifications/",
    ):
        assert browser.post(url).status_code == 403, url
    assert events_after(start) == []
    assert not PatientBlock.objects.exists()


@pytest.mark.parametrize("action", [a for a in AuditAction if a.concerns_patient])
def test_the_journal_words_every_action_that_concerns_a_patient(action: AuditAction) -> None:
    account = active_account()
    pro = make_professional("doctor", last_name="Lecteur")
    event = audit_record(action=action, actor=pro.user, patient=account.patient)
    # « Accès plus anciens » pages by event id (an event's sequence may come later).
    page = logged_in_patient(account).get("/patient/journal/", {"avant": str(event.pk + 1)})
    body = text(page)
    assert action.fr in body, action
    assert "LECTEUR Test" in body


def test_the_patient_downloads_the_certified_copy_of_a_dispensation(
    django_capture_on_commit_callbacks,
) -> None:  # type: ignore[no-untyped-def]
    account = active_account()
    prescription = submit_prescription(account.patient)
    pharmacist = make_professional("pharmacist", organisation="Pharmacie du Globe")
    make_grant(pharmacist, account.patient)
    with django_capture_on_commit_callbacks(execute=True):
        dispensation = prescription_mark_dispensed(
            prescription=prescription, pharmacist=pharmacist, kind="full", based_on_version=0
        )
    url = f"/patient/dossier/dispensation/{dispensation.public_id}/copie-certifiee.pdf"
    browser = logged_in_patient(account)
    assert url in text(browser.get("/patient/dossier/"))
    start = last_sequence()
    response = browser.get(url)
    assert response.status_code == 200 and response.getvalue().startswith(b"%PDF")
    assert "sandbox" in response["Content-Security-Policy"]
    assert events_after(start) == [("espace.document.read", "success")]
    # Another patient: 404, traced in their own journal, nothing of the copy.
    other = active_account(make_patient(birth_name="Wolf"), email="w@example.lu")
    start = last_sequence()
    refused = logged_in_patient(other).get(url)
    assert refused.status_code == 404 and b"%PDF" not in refused.content
    assert events_after(start) == [("espace.not_found", "refused")]
    assert AuditEvent.objects.get(sequence__gt=start).patient_id == other.patient_id
