"""The access rules, as plain functions and enums.

Every rule is a function with a docstring saying it in clinical words. Nothing here is looked
up by string at runtime; callers import the function they need. Durations and the profession
matrix have documented defaults below and can be overridden in settings:

* ``ESANTE_ACCESS_HOURS`` — ``{profession: hours}`` for care and own-documents accesses
  (environment: ``ESANTE_ACCESS_HOURS_PHARMACIST``, ``ESANTE_ACCESS_HOURS_DOCTOR``, ...);
* ``ESANTE_ACCESS_EMERGENCY_HOURS`` — lifetime of an emergency access (default 2);
* ``ESANTE_ACCESS_MATRIX`` — ``{profession: [document class codes]}``, replacing a profession's
  row of the default matrix.
"""

import datetime
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from esante.accounts.models import Profession, Professional
from esante.patients.models import Patient

from .models import AccessGrant


class Confidentiality(models.TextChoices):
    """HL7 confidentiality of a document (code system ``2.16.840.1.113883.5.25``)."""

    NORMAL = "N", _("Normal")
    RESTRICTED = "R", _("Restreint")
    VERY_RESTRICTED = "V", _("Très restreint")


class DocumentClass(models.TextChoices):
    """The document classes the matrix is written over (the documents app maps its types to these).

    A class groups document types: *Prescription* holds *Traitements médicamenteux* (LOINC
    57833-6); *Médication* holds medication summaries and dispensations.
    """

    PRESCRIPTION = "prescription", _("Prescription")
    MEDICATION = "medication", _("Médication")
    VACCINATION = "vaccination", _("Vaccination")
    LABORATORY = "laboratory", _("Laboratoire")
    IMAGING = "imaging", _("Imagerie")
    REPORT = "report", _("Compte rendu")
    SUMMARY = "summary", _("Synthèse médicale")
    NURSING = "nursing", _("Soins infirmiers")
    MATERNITY = "maternity", _("Maternité")
    REHABILITATION = "rehabilitation", _("Rééducation")
    PSYCHIATRY = "psychiatry", _("Psychiatrie")


_C = DocumentClass

#: Default care/own-documents access lifetimes, in hours (pharmacist 24 h, doctor 6 months).
DEFAULT_ACCESS_HOURS: dict[str, int] = {
    Profession.PHARMACIST: 24,
    Profession.DOCTOR: 183 * 24,
    Profession.DENTIST: 183 * 24,
    Profession.NURSE: 92 * 24,
    Profession.MIDWIFE: 92 * 24,
    Profession.PHYSIOTHERAPIST: 92 * 24,
}

#: Default lifetime of an emergency access ("bris de glace"), in hours.
DEFAULT_EMERGENCY_HOURS = 2

#: Default profession matrix: the document classes each profession may read. Doctors read every
#: class; a pharmacist reads prescriptions and medication-related documents, never psychiatric
#: reports; the others read what their part of the care needs.
DEFAULT_MATRIX: dict[str, frozenset[str]] = {
    Profession.DOCTOR: frozenset(DocumentClass.values),
    Profession.DENTIST: frozenset(
        {_C.PRESCRIPTION, _C.MEDICATION, _C.VACCINATION, _C.LABORATORY, _C.IMAGING, _C.REPORT, _C.SUMMARY}
    ),
    Profession.PHARMACIST: frozenset({_C.PRESCRIPTION, _C.MEDICATION, _C.VACCINATION}),
    Profession.NURSE: frozenset(
        {_C.PRESCRIPTION, _C.MEDICATION, _C.VACCINATION, _C.LABORATORY, _C.SUMMARY, _C.NURSING}
    ),
    Profession.MIDWIFE: frozenset(
        {_C.PRESCRIPTION, _C.MEDICATION, _C.VACCINATION, _C.LABORATORY, _C.IMAGING, _C.SUMMARY, _C.MATERNITY}
    ),
    Profession.PHYSIOTHERAPIST: frozenset({_C.PRESCRIPTION, _C.IMAGING, _C.REPORT, _C.REHABILITATION}),
}

#: Professions that may open an emergency access: doctors, nurses and midwives.
EMERGENCY_PROFESSIONS: frozenset[str] = frozenset({Profession.DOCTOR, Profession.NURSE, Profession.MIDWIFE})

#: Shortest free-text motif accepted for an emergency access.
EMERGENCY_MOTIF_MIN_LENGTH = 20


def access_duration(profession: str) -> datetime.timedelta:
    """How long a care or own-documents access lasts for this profession (settings, else defaults).

    A profession missing from both gets the shortest default (24 hours): an unknown profession
    never gets a long access by accident.
    """
    configured: dict[str, int] = getattr(settings, "ESANTE_ACCESS_HOURS", {}) or {}
    hours = configured.get(
        profession, DEFAULT_ACCESS_HOURS.get(profession, min(DEFAULT_ACCESS_HOURS.values()))
    )
    return datetime.timedelta(hours=hours)


def emergency_duration() -> datetime.timedelta:
    """How long an emergency access lasts (default 2 hours)."""
    return datetime.timedelta(
        hours=getattr(settings, "ESANTE_ACCESS_EMERGENCY_HOURS", DEFAULT_EMERGENCY_HOURS)
    )


def may_use_emergency_access(profession: str) -> bool:
    """Doctors, nurses and midwives may break the glass; pharmacists and the others may not."""
    return profession in EMERGENCY_PROFESSIONS


def may_dispense(profession: str) -> bool:
    """Only a pharmacist marks a prescription as dispensed."""
    return profession == Profession.PHARMACIST


def access_allows_dispensing(mode: str) -> bool:
    """Only a current care or emergency access lets a pharmacist dispense a prescription or
    withdraw their dispensation: an own-documents access is read-only."""
    return mode in (AccessGrant.Mode.CARE, AccessGrant.Mode.EMERGENCY)


def may_dispense_under(*, profession: str, mode: str) -> bool:
    """The dispense rule: a pharmacist holding a current care or emergency access marks the
    patient's prescriptions dispensed; nobody else, and never under an own-documents access."""
    return may_dispense(profession) and access_allows_dispensing(mode)


def record_refusal_reason(*, professional_state: str, dossier_state: str, blocked: bool) -> str | None:
    """Why nobody in this professional's position may obtain or use an access to the record, or None.

    An inactive (registered or suspended) professional account reaches no record; a closed record
    admits nobody, nor does a record the patient opposed; a professional the patient blocked is
    refused. Motifs and conditions are checked when an access is asked for.
    """
    if professional_state != Professional.State.ACTIVE:
        return "professional_inactive"
    if dossier_state == Patient.DossierState.CLOSED:
        return "record_closed"
    if dossier_state == Patient.DossierState.OPPOSED:
        return "record_opposed"
    if blocked:
        return "blocked"
    return None


def patient_may_set_opposition(dossier_state: str) -> bool:
    """The patient closes (opposition) or reopens their own record; a record the agency closed
    is not theirs to reopen, nor to oppose."""
    return dossier_state != Patient.DossierState.CLOSED


def record_read_refusal_reason(
    *, professional_state: str, dossier_state: str, blocked: bool, has_current_grant: bool
) -> str | None:
    """Why the professional may not read the record now, or None: ``record_refusal_reason``,
    then no current access (an expired or revoked access is none)."""
    reason = record_refusal_reason(
        professional_state=professional_state, dossier_state=dossier_state, blocked=blocked
    )
    if reason is None and not has_current_grant:
        return "no_grant"
    return reason


def readable_classes(profession: str) -> frozenset[str]:
    """The document classes a profession may read: its row of the matrix (settings, else defaults).

    An unknown profession reads nothing.
    """
    configured: dict[str, Iterable[str]] = getattr(settings, "ESANTE_ACCESS_MATRIX", {}) or {}
    if profession in configured:
        return frozenset(configured[profession])
    return DEFAULT_MATRIX.get(profession, frozenset())


def may_read_document_class(
    profession: str,
    class_code: str,
    confidentiality: str,
    *,
    is_author: bool,
    is_referring_doctor: bool,
) -> bool:
    """Whether a professional holding a care access may read a document of this class and level.

    The author always reads their own document. Otherwise: ``V`` (very restricted) is for its
    author only; ``R`` (restricted) also for the patient's médecin référent; ``N`` (normal) for
    every profession whose matrix row holds the class. An unknown level reads as ``V``.
    """
    if is_author:
        return True
    if confidentiality == Confidentiality.NORMAL:
        return class_code in readable_classes(profession)
    if confidentiality == Confidentiality.RESTRICTED:
        return is_referring_doctor and class_code in readable_classes(profession)
    return False


def may_read_document(
    *,
    mode: str,
    profession: str,
    class_code: str,
    confidentiality: str,
    is_author: bool,
    is_referring_doctor: bool,
    hidden_by_patient: bool,
) -> bool:
    """Whether a professional holding a current access of ``mode`` may read one document.

    A document the patient hid is seen by its author only. An own-documents access reads only
    the documents the professional authored. Care and emergency accesses follow the matrix and
    the confidentiality level (``may_read_document_class``); an emergency access never lifts
    ``R`` or ``V``.
    """
    if hidden_by_patient or mode == AccessGrant.Mode.OWN_DOCUMENTS:
        return is_author
    if mode not in (AccessGrant.Mode.CARE, AccessGrant.Mode.EMERGENCY):
        return False
    return may_read_document_class(
        profession, class_code, confidentiality, is_author=is_author, is_referring_doctor=is_referring_doctor
    )


def readable_documents_filter(*, mode: str, professional: Any, patient: Any) -> Q | None:
    """``may_read_document`` as a filter over a patient's documents (field names of the
    documents app), for the database to apply; None when the access reads nothing.

    The author reads their own documents; an own-documents access reads nothing else. Care and
    emergency accesses read, among the documents the patient did not hide, the classes of the
    profession's matrix row at level ``N``, and at level ``R`` when the professional is the
    patient's médecin référent. ``V`` is for its author only.
    """
    mine = Q(author=professional)
    if mode == AccessGrant.Mode.OWN_DOCUMENTS:
        return mine
    if mode not in (AccessGrant.Mode.CARE, AccessGrant.Mode.EMERGENCY):
        return None
    levels = [Confidentiality.NORMAL]
    if patient.referring_doctor_id == professional.pk:
        levels.append(Confidentiality.RESTRICTED)
    allowed = Q(class_code__in=readable_classes(professional.profession), confidentiality__in=levels)
    return mine | (Q(hidden_by_patient=False) & allowed)
