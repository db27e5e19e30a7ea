"""Document bytes in the storage: checked against their SHA-256 on every read, streamed, and in an
S3-protocol object store (``ESANTE_STORAGE=s3``) tested against moto's standalone server, started
on loopback in its own process (so that its memory is not counted in ours)."""

import base64
import hashlib
import os
import tracemalloc
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client

from esante.audit.models import AuditEvent
from esante.core.storage import S3DocumentStorage, StoredContentAltered, open_verified
from esante.documents.models import Document
from esante.documents.services import document_submit
from esante.patients.models import Patient
from tests.access.factories import make_grant, make_professional
from tests.conftest import KEY_ID, REGION, SECRET, s3_client

from . import pdfs
from .conftest import AT

LARGE = 30 * 1024 * 1024


@pytest.fixture
def bucket(s3_server: str, settings: Any) -> Iterator[dict[str, Any]]:
    """A new private bucket, and the platform's documents in it (``STORAGES["default"]`` as
    ``ESANTE_STORAGE=s3`` sets it)."""
    name = f"esante-{uuid.uuid4().hex[:12]}"
    client = s3_client(s3_server)
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "esante.core.storage.S3DocumentStorage",
            "OPTIONS": {
                "bucket_name": name,
                "endpoint_url": s3_server,
                "region_name": REGION,
                "access_key": KEY_ID,
                "secret_key": SECRET,
            },
        },
    }
    yield {"name": name, "client": client, "endpoint": s3_server}


def _submit(patient: Patient, content: bytes, **overrides: Any) -> Document:
    values: dict[str, Any] = {
        "content": content,
        "patient_matricule": patient.matricule,
        "type_code": "18842-5",
        "title": "Lettre de sortie",
        "clinical_at": AT,
        "author_name": "Dr Autre",
        "source_system": "CHL",
    }
    values.update(overrides)
    return document_submit(**values)


def _reader(patient: Patient) -> Client:
    doctor = make_professional("doctor")
    make_grant(doctor, patient)
    client = Client()
    client.force_login(doctor.user)
    return client


def _content_url(document: Document) -> str:
    return f"/edocuments/patient/{document.patient.public_id}/document/{document.public_id}/contenu"


def _viewer_url(document: Document) -> str:
    return f"/edocuments/patient/{document.patient.public_id}/document/{document.public_id}/"


def _integrity_events() -> list[dict[str, Any]]:
    return [
        {"outcome": e.outcome, **e.details}
        for e in AuditEvent.objects.filter(action="storage.integrity").order_by("sequence")
    ]


def large_pdf(size: int = LARGE) -> bytes:
    """A one-page PDF of about ``size`` bytes: an uncompressed image of random pixels."""
    width = 2048
    height = size // (width * 3)
    pixels = os.urandom(width * height * 3)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /XObject << /Im 4 0 R >> >>"
        b" /Contents 5 0 R >>",
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
        b"/BitsPerComponent 8 /Length %d >>\nstream\n"
        % (width, height, len(pixels))
        + pixels
        + b"\nendstream",
        b"<< /Length 34 >>\nstream\nq 595 0 0 842 0 0 cm /Im Do Q    \nendstream",
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


# --- the object store ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_document_is_stored_in_the_bucket_with_its_sha256_and_served_from_it(
    bucket: dict[str, Any], peppa: Patient, tmp_path: Path
) -> None:
    pdf = pdfs.clean_pdf(b"Lettre S3")
    document = _submit(peppa, pdf)
    head = bucket["client"].head_object(
        Bucket=bucket["name"], Key=document.content.name, ChecksumMode="ENABLED"
    )
    # The store keeps its own SHA-256 of the bytes, and it is the one recorded in the row.
    assert (
        base64.b64decode(head["ChecksumSHA256"]).hex() == document.sha256 == hashlib.sha256(pdf).hexdigest()
    )
    assert head["ContentLength"] == document.size == len(pdf)
    assert "ACL" not in head and head["ContentType"] == "application/pdf"
    response = _reader(peppa).get(_content_url(document))
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response["Content-Length"] == str(len(pdf)) and response.getvalue() == pdf
    assert "no-store" in response["Cache-Control"] and "sandbox" in response["Content-Security-Policy"]
    assert list(AuditEvent.objects.values_list("action", flat=True).order_by("sequence"))[-1] == (
        "document.content"
    )
    # A second submission of the same bytes (content-addressed) writes no second object.
    _submit(peppa, pdf, external_id="second")
    listed = bucket["client"].list_objects_v2(Bucket=bucket["name"])
    assert [o["Key"] for o in listed["Contents"]] == [document.content.name]
    assert _integrity_events() == []


@pytest.mark.django_db
def test_a_text_document_is_rendered_from_the_bucket(bucket: dict[str, Any], peppa: Patient) -> None:
    document = _submit(peppa, "Compte rendu : rien à signaler.".encode(), type_code="11488-4")
    response = _reader(peppa).get(_viewer_url(document))
    assert response.status_code == 200
    assert "Compte rendu : rien à signaler." in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("same_size", [True, False])
def test_an_object_overwritten_in_the_bucket_is_refused_on_read(
    bucket: dict[str, Any], peppa: Patient, same_size: bool, caplog: pytest.LogCaptureFixture
) -> None:
    pdf = pdfs.clean_pdf(b"Resultat normal")
    document = _submit(peppa, pdf)
    tampered = pdf.replace(b"normal", b"grave!") if same_size else pdf + b"% appended\n"
    assert tampered != pdf and (len(tampered) == len(pdf)) == same_size
    # Overwritten directly in the bucket, behind the platform's back (the store keeps no SHA-256 of it).
    bucket["client"].put_object(Bucket=bucket["name"], Key=document.content.name, Body=tampered)
    client = _reader(peppa)
    before = AuditEvent.objects.count()
    response = client.get(_content_url(document))
    assert response.status_code == 500
    body = response.content
    assert "ne correspond pas à son empreinte SHA-256".encode() in body
    assert b"grave!" not in body and b"%PDF" not in body and b"appended" not in body
    # The read is traced, then its refusal; a log line names the file and both digests.
    assert list(
        AuditEvent.objects.filter(sequence__gt=AuditEvent.objects.order_by("sequence")[before - 1].sequence)
        .order_by("sequence")
        .values_list("action", "outcome")
    ) == [("document.content", "success"), ("storage.integrity", "failure")]
    (event,) = _integrity_events()
    assert event["name"] == document.content.name and event["expected_sha256"] == document.sha256
    assert event["found_size"] == len(tampered)
    logged = [r.getMessage() for r in caplog.records if r.name == "esante.storage"]
    assert len(logged) == 1 and document.content.name in logged[0] and document.sha256 in logged[0]
    assert SECRET not in caplog.text
    # The viewer page refuses it the same way (a text or CDA would be rendered from the bytes).
    with pytest.raises(StoredContentAltered):
        open_verified(document.content.name, sha256=document.sha256, size=document.size)


@pytest.mark.django_db
def test_an_object_rewritten_with_the_stores_own_checksum_is_refused_before_a_byte_is_read(
    bucket: dict[str, Any], peppa: Patient
) -> None:
    pdf = pdfs.clean_pdf(b"Resultat normal")
    document = _submit(peppa, pdf)
    tampered = pdf.replace(b"normal", b"grave!")
    bucket["client"].put_object(
        Bucket=bucket["name"], Key=document.content.name, Body=tampered, ChecksumAlgorithm="SHA256"
    )
    response = _reader(peppa).get(_content_url(document))
    assert response.status_code == 500 and b"grave!" not in response.content
    (event,) = _integrity_events()
    assert event["found_sha256"] == hashlib.sha256(tampered).hexdigest()


@pytest.mark.django_db
def test_a_missing_object_is_refused(bucket: dict[str, Any], peppa: Patient) -> None:
    document = _submit(peppa, pdfs.clean_pdf(b"Perdu"))
    bucket["client"].delete_object(Bucket=bucket["name"], Key=document.content.name)
    response = _reader(peppa).get(_content_url(document))
    assert response.status_code == 500
    assert [e["found_size"] for e in _integrity_events()] == [0]


@pytest.mark.django_db
def test_the_bucket_is_private_and_no_signed_url_is_made(bucket: dict[str, Any], peppa: Patient) -> None:
    document = _submit(peppa, pdfs.clean_pdf(b"Prive"))
    url = f"{bucket['endpoint']}/{bucket['name']}/{document.content.name}"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)  # noqa: S310 - our loopback server
    assert refused.value.code == 403
    acl = bucket["client"].get_object_acl(Bucket=bucket["name"], Key=document.content.name)
    assert [g["Grantee"].get("URI") for g in acl["Grants"] if g["Grantee"].get("Type") == "Group"] == []
    with pytest.raises(NotImplementedError):
        default_storage.url(document.content.name)


@pytest.mark.django_db
def test_a_large_document_is_written_and_served_with_bounded_memory(
    bucket: dict[str, Any], peppa: Patient, settings: Any
) -> None:
    settings.ESANTE_DOCUMENT_MAX_BYTES = 40 * 1024 * 1024
    pdf = large_pdf()
    assert len(pdf) > 29 * 1024 * 1024
    expected = hashlib.sha256(pdf).hexdigest()

    # The write streams from the submitted buffer: no copy of the file on top of it. (A first
    # small write loads boto3's S3 model once a process, some megabytes: not counted.)
    default_storage.save("documents/warm.txt", ContentFile(b"warm"))
    tracemalloc.start()
    try:
        name = default_storage.save("documents/large-probe.pdf", ContentFile(pdf))
        _, write_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert name == "documents/large-probe.pdf"
    assert write_peak < len(pdf) / 4, f"write peak {write_peak} bytes"

    document = _submit(peppa, pdf)
    del pdf
    client = _reader(peppa)
    tracemalloc.start()
    try:
        response = client.get(_content_url(document))
        digest = hashlib.sha256()
        received = 0
        largest = 0
        for chunk in response.streaming_content:
            digest.update(chunk)
            received += len(chunk)
            largest = max(largest, len(chunk))
        response.close()
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 200 and response["Content-Length"] == str(document.size)
    assert received == document.size and digest.hexdigest() == expected == document.sha256
    # Served in chunks, never the whole file (30 MB) in memory: the peak is a few chunks.
    assert largest <= 256 * 1024
    assert read_peak < document.size / 8, f"read peak {read_peak} bytes"
    print(f"30 MB document over S3: write peak {write_peak / 1e6:.2f} MB, read peak {read_peak / 1e6:.2f} MB")


def test_the_s3_storage_refuses_a_write_the_store_did_not_keep_as_sent(s3_server: str) -> None:
    """A bucket that does not exist: the write fails, nothing is recorded as stored."""
    storage = S3DocumentStorage(
        bucket_name="esante-absent",
        endpoint_url=s3_server,
        region_name=REGION,
        access_key=KEY_ID,
        secret_key=SECRET,
    )
    with pytest.raises(Exception, match="NoSuchBucket"):
        storage.save("documents/x.txt", ContentFile(b"x"))


# --- the filesystem (the embedded default) ---------------------------------------------------


def _path(document: Document) -> Path:
    return Path(default_storage.path(document.content.name))


@pytest.mark.django_db
def test_a_file_altered_on_disk_is_refused_by_every_view(
    peppa: Patient, caplog: pytest.LogCaptureFixture
) -> None:
    text = _submit(peppa, b"Texte original.", type_code="11488-4", title="Note")
    _path(text).write_bytes(b"Texte modifie.")
    client = _reader(peppa)
    for url in (_content_url(text), _viewer_url(text)):
        response = client.get(url)
        assert response.status_code == 500 and b"modifie" not in response.content
        assert "ne correspond pas à son empreinte SHA-256".encode() in response.content
    assert [e["outcome"] for e in _integrity_events()] == ["failure", "failure"]
    assert sum(r.name == "esante.storage" for r in caplog.records) == 2


@pytest.mark.django_db
def test_a_large_file_is_checked_before_the_first_byte_and_streamed(peppa: Patient, settings: Any) -> None:
    settings.ESANTE_DOCUMENT_MAX_BYTES = 40 * 1024 * 1024
    pdf = large_pdf(3 * 1024 * 1024)
    document = _submit(peppa, pdf)
    path = _path(document)
    with path.open("r+b") as fh:  # one byte changed in the middle of the image
        fh.seek(len(pdf) // 2)
        fh.write(bytes([pdf[len(pdf) // 2] ^ 1]))
    response = _reader(peppa).get(_content_url(document))
    assert response.status_code == 500 and b"%PDF" not in response.content
    path.write_bytes(pdf)
    response = _reader(peppa).get(_content_url(document))
    assert response.status_code == 200 and response.getvalue() == pdf


@pytest.mark.django_db
def test_a_file_altered_while_it_is_streamed_is_cut_short(peppa: Patient, settings: Any) -> None:
    """Checked, then changed before its end is sent: the stream stops short of its length."""
    settings.ESANTE_DOCUMENT_MAX_BYTES = 40 * 1024 * 1024
    pdf = large_pdf(3 * 1024 * 1024)
    document = _submit(peppa, pdf)
    response = _reader(peppa).get(_content_url(document))
    assert response.status_code == 200
    chunks = iter(response.streaming_content)
    first = next(chunks)
    with _path(document).open("r+b") as fh:
        fh.seek(len(pdf) - 100)
        fh.write(b"X" * 10)
    received = len(first)
    with pytest.raises(StoredContentAltered):
        for chunk in chunks:
            received += len(chunk)
    # The last chunk is held back: the client gets less than the Content-Length, never the whole file.
    assert 0 < received < len(pdf) and response["Content-Length"] == str(len(pdf))
    assert [e["outcome"] for e in _integrity_events()] == ["failure"]
