"""Writing documents: ``document_submit`` is the one entry point of every ingestion path."""

import datetime
import hashlib
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from esante.access.policy import Confidentiality
from esante.accounts.models import Professional
from esante.audit.catalogue import AuditAction, AuditOutcome
from esante.audit.services import audit_record
from esante.patients.matricule import validate_patient_matricule
from esante.patients.models import Patient

from . import cda, pdf
from .models import Document, MediaType, Prescription, PrescriptionLine
from .search import document_index
from .types import DEFAULT_BINDER, DOCUMENT_TYPES, MEDICATION_PRESCRIPTION, Binder, DocumentType

_EXTENSIONS: dict[str, str] = {MediaType.PDF: "pdf", MediaType.CDA: "xml", MediaType.TEXT: "txt"}
_DECLARED = {
    "application/pdf": MediaType.PDF,
    "application/hl7-cda+xml": MediaType.CDA,
    "application/xml": MediaType.CDA,
    "text/xml": MediaType.CDA,
    "text/plain": MediaType.TEXT,
}


class DocumentRefused(Exception):
    """A submission that changes nothing; ``str(exc)`` says why, in French."""


class DocumentDuplicate(DocumentRefused):
    """The source already submitted a document with this identifier."""


@dataclass
class _Sniffed:
    media_type: str
    parsed: cda.CdaDocument | None
    text: str


def document_submit_refusal_record(*, reason: str, source_system: str, actor_label: str, label: str) -> None:
    """Traces a submission refused before ``document_submit`` could read it (a manifest line
    naming a missing file, an unreadable bundle entry)."""
    _record_refusal(
        reason, source_system=source_system, actor=None, actor_label=actor_label, external_id=label
    )


def max_bytes() -> int:
    return int(getattr(settings, "ESANTE_DOCUMENT_MAX_BYTES", 20 * 1024 * 1024))


def size_label(size: int) -> str:
    """A size in French, in the unit that fits: "850 octets", "1,5 Ko", "20 Mo" (1 Ko = 1 024 octets).

    Not Django's ``filesizeformat``: the refusal is traced in the audit trail, where it must read
    the same whatever the language of the request that caused it.
    """
    if size < 1024:
        return f"{size} octet{'s' if size > 1 else ''}"
    for unit, scale in (("Ko", 1024), ("Mo", 1024**2), ("Go", 1024**3)):
        value = size / scale
        if round(value, 1) < 1024 or unit == "Go":
            break
    # One decimal, dropped when it is zero; French decimal comma.
    return f"{value:.1f}".removesuffix(".0").replace(".", ",") + f" {unit}"


def _sniff(content: bytes, declared: str | None) -> _Sniffed:
    if declared:
        declared_type = _DECLARED.get(declared.split(";")[0].strip().lower())
        if declared_type is None:
            raise DocumentRefused(
                f"format « {declared} » non accepté : seuls PDF, HL7 CDA R2 (XML) et texte sont acceptés"
            )
    else:
        declared_type = None
    if content.startswith(b"%PDF-"):
        try:
            pdf.check(
                content,
                max_objects=int(getattr(settings, "ESANTE_PDF_MAX_OBJECTS", pdf.DEFAULT_MAX_OBJECTS)),
                max_seconds=float(getattr(settings, "ESANTE_PDF_MAX_SECONDS", pdf.DEFAULT_MAX_SECONDS)),
            )
        except pdf.PdfRefused as exc:
            raise DocumentRefused(str(exc)) from None
        sniffed = _Sniffed(MediaType.PDF, None, "")
    elif content.lstrip()[:1] == b"<":
        try:
            parsed = cda.parse(content)
        except cda.CdaError as exc:
            raise DocumentRefused(str(exc)) from None
        sniffed = _Sniffed(MediaType.CDA, parsed, parsed.text)
    else:
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            raise DocumentRefused(
                "format non reconnu : seuls PDF, HL7 CDA R2 (XML) et texte UTF-8 sont acceptés"
            ) from None
        if "\x00" in text:
            raise DocumentRefused("format non reconnu : fichier binaire")
        sniffed = _Sniffed(MediaType.TEXT, None, text)
    if declared_type is not None and declared_type != sniffed.media_type:
        raise DocumentRefused(
            f"le contenu ({sniffed.media_type}) ne correspond pas au format déclaré ({declared})"
        )
    return sniffed


def _store(content: bytes, digest: str, media_type: str) -> str:
    """Content-addressed: the same bytes are stored once; a retry after a failure rewrites nothing."""
    name = f"documents/{digest[:2]}/{digest}.{_EXTENSIONS[media_type]}"
    if not default_storage.exists(name):
        name = default_storage.save(name, ContentFile(content))
    return name


def _record_refusal(
    reason: str, *, source_system: str, actor: Any, actor_label: str, external_id: str
) -> None:
    """The refusal's own audit event, in its own transaction: the submission wrote nothing."""
    audit_record(
        action=AuditAction.DOCUMENT_SUBMIT,
        outcome=AuditOutcome.REFUSED,
        actor=actor,
        actor_label=actor_label,
        object_type="document",
        object_id=external_id[:64],
        details={"source": source_system, "reason": reason},
    )


def document_submit(
    *,
    content: bytes,
    source_system: str,
    patient_matricule: str = "",
    media_type: str | None = None,
    type_code: str = "",
    title: str = "",
    clinical_at: datetime.datetime | None = None,
    author: Professional | None = None,
    author_name: str = "",
    binder: str = "",
    confidentiality: str = "",
    external_id: str = "",
    hidden_by_patient: bool = False,
    actor: Any = None,
    actor_label: str = "",
) -> Document:
    """Validates and files one document in a patient's record.

    Accepts PDF, HL7 CDA R2 and UTF-8 text up to ``ESANTE_DOCUMENT_MAX_BYTES``. A CDA supplies
    its own metadata (patient, type, title, date, author, confidentiality) and, for a medication
    prescription, its structured lines. Any refusal (unknown patient, bad matricule, unsupported
    media, malformed or hostile CDA, a PDF with active content or that cannot be inspected,
    oversize, duplicate) changes nothing but its own audit event and raises DocumentRefused with
    the reason in French.
    """
    refusal = {
        "source_system": source_system,
        "actor": actor,
        "actor_label": actor_label,
        "external_id": external_id,
    }
    try:
        checked = _submission_check(
            content=content,
            source_system=source_system,
            patient_matricule=patient_matricule,
            media_type=media_type,
            type_code=type_code,
            title=title,
            clinical_at=clinical_at,
            author=author,
            author_name=author_name,
            binder=binder,
            confidentiality=confidentiality,
            external_id=external_id,
            refusal=refusal,
        )
    except DocumentRefused as exc:
        _record_refusal(str(exc), **refusal)  # type: ignore[arg-type]
        raise

    digest = hashlib.sha256(content).hexdigest()
    name = _store(
        content, digest, checked.sniffed.media_type
    )  # outside the transaction: a file write is slow
    try:
        with transaction.atomic():
            document = _document_file(
                checked,
                content=content,
                digest=digest,
                name=name,
                source_system=source_system,
                hidden_by_patient=hidden_by_patient,
                actor=actor,
                actor_label=actor_label,
            )
    except IntegrityError:
        reason = f"document déjà reçu de {source_system} (identifiant {checked.external_id})"
        _record_refusal(reason, **refusal)  # type: ignore[arg-type]
        raise DocumentDuplicate(reason) from None
    return document


@dataclass
class _Checked:
    """A submission that passed every check, with the metadata completed from the CDA."""

    sniffed: _Sniffed
    patient: Patient
    document_type: DocumentType
    title: str
    clinical_at: datetime.datetime
    author: Professional | None
    author_name: str
    binder: str
    confidentiality: str
    external_id: str


def _submission_check(
    *,
    content: bytes,
    source_system: str,
    patient_matricule: str,
    media_type: str | None,
    type_code: str,
    title: str,
    clinical_at: datetime.datetime | None,
    author: Professional | None,
    author_name: str,
    binder: str,
    confidentiality: str,
    external_id: str,
    refusal: dict[str, Any],
) -> _Checked:
    """Every check of ``document_submit``, before anything is written; raises DocumentRefused.
    Records the CDA's own identifier in ``refusal`` as soon as it is known."""
    if not content:
        raise DocumentRefused("document vide")
    if len(content) > max_bytes():
        size, limit = size_label(len(content)), size_label(max_bytes())
        if size == limit:  # rounded to the same figure: the exact counts say which is larger
            size, limit = f"{len(content)} octets", f"{max_bytes()} octets"
        raise DocumentRefused(f"document trop volumineux ({size} ; maximum {limit})")
    sniffed = _sniff(content, media_type)
    parsed = sniffed.parsed
    if parsed is not None:
        if patient_matricule and validate_patient_matricule(patient_matricule) != parsed.patient_matricule:
            raise DocumentRefused("le matricule du document ne correspond pas au patient indiqué")
        patient_matricule = parsed.patient_matricule
        type_code = type_code or parsed.type_code
        title = title or parsed.title
        clinical_at = clinical_at or parsed.effective_at
        confidentiality = confidentiality or parsed.confidentiality
        author_name = author_name or parsed.author_name
        external_id = external_id or parsed.document_id
        refusal["external_id"] = external_id
        if author is None and parsed.author_matricule:
            author = Professional.objects.filter(matricule=parsed.author_matricule).first()
    try:
        matricule = validate_patient_matricule(patient_matricule)
    except ValidationError as exc:
        raise DocumentRefused(f"matricule du patient invalide : {exc.messages[0]}") from None
    patient = Patient.objects.filter(matricule=matricule).first()
    if patient is None:
        raise DocumentRefused("patient inconnu de l'index des patients")
    document_type = DOCUMENT_TYPES.get(type_code)
    if document_type is None:
        raise DocumentRefused(f"type de document « {type_code or '(aucun)'} » inconnu")
    confidentiality = confidentiality or Confidentiality.NORMAL
    if confidentiality not in Confidentiality.values:
        raise DocumentRefused(f"niveau de confidentialité « {confidentiality} » inconnu (N, R ou V)")
    if not title:
        raise DocumentRefused("titre du document manquant")
    if clinical_at is None:
        raise DocumentRefused("date clinique du document manquante")
    if author is not None and not author_name:
        author_name = f"{author.first_name} {author.last_name}"
    if not author_name:
        raise DocumentRefused("auteur du document manquant")
    binder = binder or str(DEFAULT_BINDER.get(document_type.class_code, Binder.GENERAL))  # type: ignore[call-overload]
    if binder not in Binder.values:
        raise DocumentRefused(f"classeur « {binder} » inconnu")
    if external_id and Document.objects.filter(source_system=source_system, external_id=external_id).exists():
        raise DocumentDuplicate(f"document déjà reçu de {source_system} (identifiant {external_id})")
    return _Checked(
        sniffed=sniffed,
        patient=patient,
        document_type=document_type,
        title=title,
        clinical_at=clinical_at,
        author=author,
        author_name=author_name,
        binder=binder,
        confidentiality=confidentiality,
        external_id=external_id,
    )


def _document_file(
    checked: _Checked,
    *,
    content: bytes,
    digest: str,
    name: str,
    source_system: str,
    hidden_by_patient: bool,
    actor: Any,
    actor_label: str,
) -> Document:
    """Files the checked document (and a prescription's lines), indexes it, traces it last."""
    document = Document.objects.create(
        patient=checked.patient,
        type_code=checked.document_type.code,
        class_code=checked.document_type.class_code,
        title=checked.title[:300],
        clinical_at=checked.clinical_at,
        author=checked.author,
        author_name=checked.author_name[:200],
        source_system=source_system,
        binder=checked.binder,
        confidentiality=checked.confidentiality,
        media_type=checked.sniffed.media_type,
        content=name,
        sha256=digest,
        size=len(content),
        hidden_by_patient=hidden_by_patient,
        external_id=checked.external_id[:200],
        text_content=checked.sniffed.text[:200_000],
    )
    if checked.document_type.code == MEDICATION_PRESCRIPTION and checked.sniffed.parsed is not None:
        prescription = Prescription.objects.create(
            document=document, prescribed_at=checked.clinical_at, prescriber_name=checked.author_name[:200]
        )
        PrescriptionLine.objects.bulk_create(
            PrescriptionLine(
                prescription=prescription,
                position=number,
                medication=line.medication[:300],
                medication_code=line.medication_code[:64],
                dosage=line.dosage[:500],
                quantity=line.quantity,
                unit=line.unit[:50],
            )
            for number, line in enumerate(checked.sniffed.parsed.lines, start=1)
        )
    document_index(document)
    audit_record(
        action=AuditAction.DOCUMENT_SUBMIT,
        actor=actor,
        actor_label=actor_label,
        patient=checked.patient,
        object_type="document",
        object_id=str(document.public_id),
        details={
            "source": source_system,
            "type": checked.document_type.code,
            "sha256": digest,
            "size": len(content),
        },
    )
    return document


def document_mark_entered_in_error(*, document_id: int) -> None:
    """Marks a document ``entered-in-error``: it leaves the record's views but is never deleted.

    For the caller's transaction (e.g. a withdrawn dispensation); the caller writes the audit
    event that explains why.
    """
    Document.objects.filter(pk=document_id).update(status=Document.Status.ENTERED_IN_ERROR)


def documents_provide(
    *, submissions: list[tuple[bytes, dict[str, Any]]], source_system: str, actor_label: str
) -> list[tuple[Document, bool]]:
    """Files several documents all or nothing (IHE ITI-65 "Provide Document Bundle").

    Each submission is ``(content, document_submit arguments)``. A document this source already
    filed with the same bytes is no error: it is returned as it is, with ``False`` (a
    resubmission is idempotent); the others are filed with ``True``. When any is refused, none
    is filed: raises ``DocumentRefused`` after the rollback and traces the refusal then (the
    event traced inside the rolled-back transaction went with it).
    """
    try:
        with transaction.atomic():
            results: list[tuple[Document, bool]] = []
            for content, arguments in submissions:
                digest = hashlib.sha256(content).hexdigest()
                existing = Document.objects.filter(source_system=source_system, sha256=digest).first()
                if existing is not None:
                    results.append((existing, False))
                    continue
                filed = document_submit(
                    content=content,
                    **{**arguments, "source_system": source_system, "actor_label": actor_label},
                )
                results.append((filed, True))
            return results
    except DocumentRefused as refusal:
        _record_refusal(
            f"lot refusé en entier : {refusal}",
            source_system=source_system,
            actor=None,
            actor_label=actor_label,
            external_id="",
        )
        raise
