import datetime
import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.test import override_settings
from pypdf import PdfReader

from esante.audit.models import AuditEvent
from esante.documents.models import Document, MediaType, Prescription
from esante.documents.services import DocumentDuplicate, DocumentRefused, document_submit, size_label
from esante.patients.matricule import make_patient_matricule
from esante.patients.models import Patient

from . import pdfs
from .conftest import AT, PEPPA, make_prescription

OTHER = make_patient_matricule(datetime.date(1985, 3, 2), 41)
PDF = pdfs.clean_pdf()
MB = 1024 * 1024


def refused_events() -> list[tuple[str, str]]:
    return list(AuditEvent.objects.order_by("sequence").values_list("action", "outcome"))


@pytest.mark.django_db
def test_cda_prescription_is_filed_with_its_lines(peppa: Patient) -> None:
    document = document_submit(content=make_prescription(), source_system="eServices", actor_label="test")
    assert (document.patient, document.type_code, document.class_code) == (peppa, "57833-6", "prescription")
    assert document.media_type == MediaType.CDA and document.clinical_at == AT
    assert document.author_name == "Dr Marc Weber" and document.binder == "medication"
    with default_storage.open(document.content.name) as fh:
        assert fh.read() == make_prescription()
    assert len(document.sha256) == 64 and document.size == len(make_prescription())
    prescription = Prescription.objects.get(document=document)
    assert [(line.medication, line.quantity) for line in prescription.lines.all()] == [
        ("AMOXICILLINE 1 g", 2),
        ("PARACETAMOL 500 mg", 1),
    ]
    assert prescription.dispensation_state == "open"
    event = AuditEvent.objects.get()
    assert (event.action, event.outcome, event.patient, event.object_id) == (
        "document.submit",
        "success",
        peppa,
        str(document.public_id),
    )


@pytest.mark.django_db
def test_pdf_and_text_need_their_metadata(peppa: Patient) -> None:
    common = {"patient_matricule": PEPPA, "clinical_at": AT, "author_name": "Dr X", "source_system": "CHL"}
    pdf = document_submit(content=PDF, type_code="18842-5", title="Lettre de sortie", **common)
    text = document_submit(content="Résultat normal.".encode(), type_code="11502-2", title="Labo", **common)
    assert (pdf.media_type, text.media_type) == (MediaType.PDF, MediaType.TEXT)
    assert text.text_content == "Résultat normal." and not Prescription.objects.exists()


@pytest.mark.parametrize(
    ("content", "arguments", "reason"),
    [
        (b"", {}, "document vide"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", {}, "format non reconnu"),
        (b"GIF89a\x00\x01", {}, "fichier binaire"),
        (b"<html><body>hello</body></html>", {}, "n'est pas un document HL7 CDA"),
        (b"<ClinicalDocument", {}, "mal formé"),
        (PDF, {"media_type": "image/png"}, "format « image/png » non accepté"),
        (PDF, {"media_type": "text/plain"}, "ne correspond pas au format déclaré"),
        (PDF, {"patient_matricule": "1904112000167"}, "chiffres de contrôle"),
        (PDF, {"patient_matricule": OTHER}, "patient inconnu"),
        (PDF, {"type_code": "99999-9"}, "type de document « 99999-9 » inconnu"),
        (PDF, {"confidentiality": "X"}, "confidentialité « X » inconnu"),
    ],
)
@pytest.mark.django_db
def test_refusals_change_nothing_but_their_audit_event(
    peppa: Patient, content: bytes, arguments: dict[str, str], reason: str
) -> None:
    values = {
        "patient_matricule": PEPPA,
        "type_code": "18842-5",
        "title": "T",
        "clinical_at": AT,
        "author_name": "Dr X",
        "source_system": "CHL",
        **arguments,
    }
    with pytest.raises(DocumentRefused, match=reason):
        document_submit(content=content, **values)  # type: ignore[arg-type]
    assert not Document.objects.exists()
    assert refused_events() == [("document.submit", "refused")]
    assert reason.split("«")[0].strip() in AuditEvent.objects.get().details["reason"]


@pytest.mark.parametrize(
    ("limit", "size", "message"),
    [
        (100, 150, "document trop volumineux (150 octets ; maximum 100 octets)"),
        (1, 2, "document trop volumineux (2 octets ; maximum 1 octet)"),
        (2048, 3 * 1024 + 512, "document trop volumineux (3,5 Ko ; maximum 2 Ko)"),
        (20 * MB, 20 * MB + 300 * 1024, "document trop volumineux (20,3 Mo ; maximum 20 Mo)"),
        # Both round to "1 Mo": the exact counts are given instead.
        (MB - 1, MB, "document trop volumineux (1048576 octets ; maximum 1048575 octets)"),
    ],
)
@pytest.mark.django_db
def test_oversize_is_refused_with_sizes_in_units_that_fit(
    peppa: Patient, limit: int, size: int, message: str
) -> None:
    content = b"a" * size
    with override_settings(ESANTE_DOCUMENT_MAX_BYTES=limit), pytest.raises(DocumentRefused) as caught:
        document_submit(
            content=content,
            patient_matricule=PEPPA,
            type_code="18842-5",
            title="T",
            clinical_at=AT,
            author_name="X",
            source_system="CHL",
        )
    assert str(caught.value) == message
    assert not Document.objects.exists()
    assert refused_events() == [("document.submit", "refused")]
    assert AuditEvent.objects.get().details["reason"] == message


@pytest.mark.parametrize(
    ("size", "label"),
    [
        (0, "0 octet"),
        (1, "1 octet"),
        (1023, "1023 octets"),
        (1024, "1 Ko"),
        (1536, "1,5 Ko"),
        (1024 * 1024 - 60, "1023,9 Ko"),
        (1024 * 1024 - 1, "1 Mo"),
        (int(25.33 * 1024 * 1024), "25,3 Mo"),
        (5 * 1024**3, "5 Go"),
    ],
)
def test_size_label_uses_the_unit_that_fits(size: int, label: str) -> None:
    assert size_label(size) == label


def pdf_submission(content: bytes) -> Document:
    return document_submit(
        content=content,
        patient_matricule=PEPPA,
        type_code="18842-5",
        title="Lettre de sortie",
        clinical_at=AT,
        author_name="Dr X",
        source_system="CHL",
        external_id="L-1",
    )


@pytest.mark.parametrize("construct", sorted(pdfs.HOSTILE))
@pytest.mark.django_db
def test_pdf_with_active_content_is_refused(peppa: Patient, construct: str) -> None:
    make, named = pdfs.HOSTILE[construct]
    content = make()
    with pytest.raises(DocumentRefused) as caught:
        pdf_submission(content)
    reason = str(caught.value)
    assert reason.startswith("document PDF refusé : il contient du contenu actif (") and named in reason
    assert not Document.objects.exists()
    digest = hashlib.sha256(content).hexdigest()
    assert not default_storage.exists(f"documents/{digest[:2]}/{digest}.pdf")
    event = AuditEvent.objects.get()
    assert (event.action, event.outcome, event.patient, event.object_id) == (
        "document.submit",
        "refused",
        None,
        "L-1",
    )
    assert event.details == {"source": "CHL", "reason": reason}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (pdfs.pdf_with_password(), "document PDF refusé : il est protégé par un mot de passe"),
        (b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", "fichier PDF illisible ou endommagé"),
        (pdfs.clean_pdf()[:150], "fichier PDF illisible ou endommagé"),
        (b"%PDF-1.7\n" + b"[" * 50_000, "fichier PDF illisible ou endommagé"),
    ],
    ids=["password", "no-xref", "truncated", "deep-nesting"],
)
@pytest.mark.django_db
def test_pdf_that_cannot_be_inspected_is_refused(peppa: Patient, content: bytes, reason: str) -> None:
    with pytest.raises(DocumentRefused, match=reason):
        pdf_submission(content)
    assert not Document.objects.exists()
    assert refused_events() == [("document.submit", "refused")]


@pytest.mark.parametrize(
    "make",
    [
        pdfs.clean_pdf,
        pdfs.pdf_with_open_destination,
        pdfs.pdf_with_restrictions_only,
        lambda: pdfs.pdf_with_link("https://labo.example.lu/resultats?id=42"),
        lambda: pdfs.pdf_with_link("HTTP://labo.example.lu/"),
        lambda: pdfs.pdf_with_uri_base("https://labo.example.lu/"),
    ],
    ids=["clean", "open-destination", "restrictions-only", "https-link", "http-link", "https-base"],
)
@pytest.mark.django_db
def test_pdf_without_active_content_is_filed(peppa: Patient, make: Any) -> None:
    content = make()
    document = pdf_submission(content)
    assert document.media_type == MediaType.PDF
    with default_storage.open(document.content.name) as fh:
        assert fh.read() == content
    assert refused_events() == [("document.submit", "success")]


def assert_refused_cleanly(content: bytes, reason: str) -> None:
    """``reason`` is the whole refusal: nothing filed or stored, one refusal event naming it."""
    with pytest.raises(DocumentRefused) as caught:
        pdf_submission(content)
    assert str(caught.value) == reason
    assert not Document.objects.exists()
    digest = hashlib.sha256(content).hexdigest()
    assert not default_storage.exists(f"documents/{digest[:2]}/{digest}.pdf")
    event = AuditEvent.objects.get()
    assert (event.action, event.outcome, event.details) == (
        "document.submit",
        "refused",
        {"source": "CHL", "reason": reason},
    )


# The clean PDF's own objects (catalog, pages, page, content stream), besides the extra ones.
OWN_OBJECTS = len(PdfReader(io.BytesIO(PDF)).xref[0])


@override_settings(ESANTE_PDF_MAX_OBJECTS=100)
@pytest.mark.django_db
def test_pdf_with_too_many_objects_is_refused(peppa: Patient) -> None:
    content = pdfs.pdf_with_objects(101 - OWN_OBJECTS)
    assert_refused_cleanly(
        content, "document PDF refusé : structure trop complexe (101 objets ; maximum 100)"
    )


@override_settings(ESANTE_PDF_MAX_OBJECTS=100)
@pytest.mark.django_db
def test_pdf_at_the_object_limit_is_filed(peppa: Patient) -> None:
    document = pdf_submission(pdfs.pdf_with_objects(100 - OWN_OBJECTS))
    assert document.media_type == MediaType.PDF
    assert refused_events() == [("document.submit", "success")]


@override_settings(ESANTE_PDF_MAX_OBJECTS=100)
@pytest.mark.django_db
def test_pdf_declaring_too_many_objects_in_a_compressed_xref_is_refused(peppa: Patient) -> None:
    # About a kilobyte declaring 100,000 objects: refused before they are read.
    content = pdfs.pdf_with_xref_stream_entries(100_000)
    assert len(content) < 2000
    assert_refused_cleanly(content, "document PDF refusé : structure trop complexe")


@override_settings(ESANTE_PDF_MAX_SECONDS=0.001)
@pytest.mark.django_db
def test_pdf_taking_too_long_to_inspect_is_refused(peppa: Patient) -> None:
    assert_refused_cleanly(
        pdfs.pdf_with_objects(2000),
        "document PDF refusé : structure trop complexe (contrôle interrompu après 0,001 s)",
    )


@pytest.mark.django_db
def test_unknown_patient_in_cda_is_refused(db: None) -> None:
    with pytest.raises(DocumentRefused, match="patient inconnu"):
        document_submit(content=make_prescription(), source_system="eServices")
    assert not Document.objects.exists() and refused_events() == [("document.submit", "refused")]


@pytest.mark.django_db
def test_duplicate_from_the_same_source_is_refused(peppa: Patient) -> None:
    document_submit(content=make_prescription(), source_system="eServices")
    with pytest.raises(DocumentDuplicate):
        document_submit(content=make_prescription(), source_system="eServices")
    assert Document.objects.count() == 1


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE ClinicalDocument [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&xxe;</title></ClinicalDocument>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&lol3;</title></ClinicalDocument>"""


@pytest.mark.parametrize("hostile", [XXE, BILLION_LAUGHS])
@pytest.mark.django_db
def test_hostile_cda_is_refused_without_resolving_entities(peppa: Patient, hostile: bytes) -> None:
    with pytest.raises(DocumentRefused, match="DTD ou entités interdites") as caught:
        document_submit(content=hostile, source_system="x")
    assert "root:" not in str(caught.value)
    assert not Document.objects.exists()


@pytest.mark.django_db
def test_cda_matricule_must_match_the_declared_patient(peppa: Patient) -> None:
    with pytest.raises(DocumentRefused, match="ne correspond pas au patient"):
        document_submit(content=make_prescription(), patient_matricule=OTHER, source_system="x")
    assert not Document.objects.exists()


def test_storage_is_under_the_data_dir(settings: object) -> None:
    assert Path(default_storage.location).is_relative_to(Path(settings.DATA_DIR))  # type: ignore[attr-defined]


@pytest.mark.parametrize("quantity", ["1e400", "1e30", "-2", "2.5", "nan", "0"])
@pytest.mark.django_db
def test_absurd_quantities_are_refused_cleanly(peppa: Patient, quantity: str) -> None:
    content = make_prescription().replace(b'value="2" unit=', f'value="{quantity}" unit='.encode())
    assert content != make_prescription()
    with pytest.raises(DocumentRefused, match="quantité prescrite"):
        document_submit(content=content, source_system="eServices")
    assert not Document.objects.exists() and refused_events() == [("document.submit", "refused")]


@pytest.mark.django_db
def test_unreadable_date_offset_is_a_missing_date(peppa: Patient) -> None:
    content = make_prescription().replace(
        b'effectiveTime value="20261125221400+0100"', b'effectiveTime value="20261125221400+ab"'
    )
    assert content != make_prescription()
    with pytest.raises(DocumentRefused, match="date clinique"):
        document_submit(content=content, source_system="eServices")


@pytest.mark.django_db
def test_deeply_nested_narrative_is_rendered_without_recursion(peppa: Patient) -> None:
    from esante.documents import cda

    nested = "<ns0:content>" * 3000 + "profond" + "</ns0:content>" * 3000
    content = make_prescription().replace(
        b"<ns0:title>Prescription</ns0:title>",
        f"<ns0:title>Prescription</ns0:title><ns0:text>{nested}</ns0:text>".encode(),
        1,
    )
    document = document_submit(content=content, source_system="eServices")
    html = cda.render_html(cda.parse(content))
    assert content != make_prescription()
    assert "profond" in html and document.pk
