"""The certified true copy (PDF, grid, QR code), the eDispensation CDA, and the public verification."""

import hashlib
import io
import re
from typing import Any

import pytest
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.test import Client, TestCase, override_settings
from pypdf import PdfReader

from esante.accounts.models import Professional
from esante.dispensing.models import CertifiedCopy, Dispensation
from esante.dispensing.services import prescription_mark_dispensed
from esante.documents import cda
from esante.documents.models import Prescription
from esante.patients.models import Patient
from tests.access.factories import make_professional

from .conftest import events_after, last_sequence, logged_in, pharmacist_with_access

CODE = re.compile(r"[A-Z2-7]{4}(?:-[A-Z2-7]{1,4}){6}")


@pytest.fixture(autouse=True)
def _fresh_throttle() -> None:
    cache.clear()


def _pdf_text(copy: CertifiedCopy) -> tuple[bytes, str]:
    with default_storage.open(copy.pdf.name, "rb") as fh:
        data = fh.read()
    reader = PdfReader(io.BytesIO(data))
    return data, "\n".join(page.extract_text() for page in reader.pages)


def _partial(
    prescription: Prescription, pharmacist: Professional, quantities: list[int], version: int
) -> Any:
    lines = dict(
        zip(prescription.lines.order_by("position").values_list("pk", flat=True), quantities, strict=True)
    )
    with TestCase.captureOnCommitCallbacks(execute=True):  # the follow-up job runs at the commit
        return prescription_mark_dispensed(
            prescription=prescription,
            pharmacist=pharmacist,
            kind="partial",
            lines=lines,
            based_on_version=version,
            public_url="https://edocuments.example.lu",
        )


@pytest.mark.django_db
def test_certified_copy_shows_the_filled_grid_and_a_verification_code(
    prescription: Prescription, pharmacist: Professional
) -> None:
    dispensation = _partial(prescription, pharmacist, [1, 2], 0)
    copy = CertifiedCopy.objects.get(dispensation=dispensation)
    data, text = _pdf_text(copy)
    flat = " ".join(text.split())
    assert data.startswith(b"%PDF-") and hashlib.sha256(data).hexdigest() == copy.pdf_sha256
    assert "Copie certifiée conforme" in flat
    assert "AMOXICILLINE 1 g comprimés" in flat and "PARACETAMOL 500 mg comprimés" in flat
    assert "Pharmacie du Globe" in flat and "Claudine Kremer" in flat
    assert "Date Pharmacie Pharmacien Médicament Prescrit Délivré Reste" in flat
    # Grid rows: prescribed, delivered now, remaining.
    assert "AMOXICILLINE 1 g comprimés 3 1 2" in flat and "PARACETAMOL 500 mg comprimés 2 2 0" in flat
    assert "certifie que la présente copie est conforme à la prescription électronique" in flat
    assert str(prescription.document.public_id) in flat
    assert (
        "https://edocuments.example.lu/verifier/" in flat.replace(" ", "") or "edocuments.example.lu" in flat
    )
    assert CODE.search(flat)
    assert sum(len(page.images) for page in PdfReader(io.BytesIO(data)).pages) >= 1  # the QR code


@pytest.mark.django_db
def test_edispensation_document_follows_the_luxembourg_template(
    prescription: Prescription, pharmacist: Professional
) -> None:
    dispensation = _partial(prescription, pharmacist, [1, 0], 0)
    document = Dispensation.objects.get(pk=dispensation.pk).document
    assert document is not None and document.author == pharmacist
    with default_storage.open(document.content.name, "rb") as fh:
        parsed = cda.parse(fh.read())
    root = parsed.root
    templates = {t.get("root") for t in root.findall("h:templateId", cda.N)}
    assert {"1.3.182.11.1", "1.3.182.11.6.1"} <= templates
    supplies = list(root.iter(f"{{{cda.NS}}}supply"))
    assert len(supplies) == 1  # one dispensed supply entry per line handed over
    assert supplies[0].find("h:templateId", cda.N).get("root") == "1.3.182.11.6.2.3.1"  # type: ignore[union-attr]
    assert supplies[0].find("h:quantity", cda.N).get("value") == "1"  # type: ignore[union-attr]
    assert (
        parsed.type_code == "60593-1" and parsed.patient_matricule == prescription.document.patient.matricule
    )


@pytest.mark.django_db
def test_verification_page_accepts_the_genuine_code_and_rejects_a_forged_one(
    peppa: Patient, prescription: Prescription, pharmacist: Professional
) -> None:
    dispensation = _partial(prescription, pharmacist, [1, 2], 0)
    copy = CertifiedCopy.objects.get(dispensation=dispensation)
    data, text = _pdf_text(copy)
    match = CODE.search(" ".join(text.split()))
    assert match is not None
    code = match.group(0).replace("-", "")
    public = Client()
    start = last_sequence()
    response = public.get(f"/verifier/{code}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Copie authentique" in html and "Copie en vigueur" in html
    assert str(prescription.document.public_id) in html and hashlib.sha256(data).hexdigest() in html
    for clinical in ("AMOXICILLINE", "PARACETAMOL", "Posologie", peppa.first_names, peppa.matricule):
        assert clinical not in html
    assert events_after(start) == [("dispensation.verify", "success")]
    # The grouped form as printed also works, through the form page.
    assert public.get("/verifier/", {"code": match.group(0).lower()})["Location"] == f"/verifier/{code}/"

    forged = code[:-1] + ("A" if code[-1] != "A" else "B")
    start = last_sequence()
    response = public.get(f"/verifier/{forged}/")
    assert response.status_code == 404
    assert "Code de vérification inconnu" in response.content.decode()
    assert public.get("/verifier/pas-un-code/").status_code == 404
    assert events_after(start) == [("dispensation.verify", "refused")] * 2

    # A later delivery supersedes the copy; the page says so.
    _partial(prescription, pharmacist, [2, 0], 1)
    html = public.get(f"/verifier/{code}/").content.decode()
    assert "Copie remplacée" in html and "une délivrance ultérieure" in html


@pytest.mark.django_db
def test_a_pharmacist_with_access_also_sees_what_remains(
    peppa: Patient, prescription: Prescription, pharmacist: Professional
) -> None:
    dispensation = _partial(prescription, pharmacist, [1, 2], 0)
    copy = CertifiedCopy.objects.get(dispensation=dispensation)
    code = CODE.search(" ".join(_pdf_text(copy)[1].split())).group(0).replace("-", "")  # type: ignore[union-attr]
    other = pharmacist_with_access(peppa)
    html = logged_in(other).get(f"/verifier/{code}/").content.decode()
    assert "Reste à délivrer" in html and "AMOXICILLINE 1 g comprimés" in html
    without_access = make_professional("pharmacist")
    html = logged_in(without_access).get(f"/verifier/{code}/").content.decode()
    assert "Copie authentique" in html and "AMOXICILLINE" not in html


@pytest.mark.django_db
def test_certified_copy_download_is_traced(prescription: Prescription, pharmacist: Professional) -> None:
    dispensation = _partial(prescription, pharmacist, [1, 0], 0)
    document = prescription.document
    url = (
        f"/edocuments/patient/{document.patient.public_id}/document/{document.public_id}/dispensation/"
        f"{dispensation.public_id}/copie-certifiee.pdf"
    )
    start = last_sequence()
    response = logged_in(pharmacist).get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response.getvalue().startswith(b"%PDF-")
    assert events_after(start) == [("dispensation.copy", "success")]
    stranger = make_professional("pharmacist")
    start = last_sequence()
    assert logged_in(stranger).get(url).status_code == 404
    assert events_after(start) == [("dispensation.copy", "refused")]


@pytest.mark.django_db
@override_settings(ESANTE_VERIFY_RATE_LIMIT=3)
def test_verification_is_throttled() -> None:
    public = Client()
    codes = [public.get(f"/verifier/{'A' * 26}/").status_code for _ in range(4)]
    assert codes == [404, 404, 404, 429]


@pytest.mark.django_db
def test_a_certified_copy_altered_in_the_storage_is_refused(
    prescription: Prescription, pharmacist: Professional
) -> None:
    from pathlib import Path

    from django.core.files.storage import default_storage

    from esante.dispensing.models import CertifiedCopy

    dispensation = _partial(prescription, pharmacist, [1, 0], 0)
    document = prescription.document
    copy = CertifiedCopy.objects.get(dispensation=dispensation)
    path = Path(default_storage.path(copy.pdf.name))
    path.write_bytes(path.read_bytes().replace(b"%PDF-", b"%PDF-", 1) + b"%altered\n")
    url = (
        f"/edocuments/patient/{document.patient.public_id}/document/{document.public_id}/dispensation/"
        f"{dispensation.public_id}/copie-certifiee.pdf"
    )
    start = last_sequence()
    response = logged_in(pharmacist).get(url)
    assert response.status_code == 500 and b"%PDF" not in response.content
    assert "ne correspond pas à son empreinte SHA-256".encode() in response.content
    assert events_after(start) == [("dispensation.copy", "success"), ("storage.integrity", "failure")]
