"""Document types (LOINC) and the classes they are grouped in.

The class codes are those of the access matrix (``esante.access.policy.DocumentClass``); the
"Vue documentaire" tree shows class > type with counts, e.g. "Prescription (3)" >
"Traitements médicamenteux (3)".
"""

from dataclasses import dataclass

from django.db import models
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

from esante.access.policy import DocumentClass

LOINC_SYSTEM = "2.16.840.1.113883.6.1"


@dataclass(frozen=True)
class DocumentType:
    code: str  # LOINC
    label: str  # French, the platform's language; also the msgid of its translation
    class_code: str

    @property
    def display_label(self) -> str:
        """The label in the active language (the portal's)."""
        return gettext(self.label)


MEDICATION_PRESCRIPTION = "57833-6"
DISPENSATION = "60593-1"

DOCUMENT_TYPES: dict[str, DocumentType] = {
    t.code: t
    for t in [
        DocumentType(
            MEDICATION_PRESCRIPTION, gettext_noop("Traitements médicamenteux"), DocumentClass.PRESCRIPTION
        ),
        DocumentType(DISPENSATION, gettext_noop("Dispensations de médicaments"), DocumentClass.MEDICATION),
        DocumentType("10160-0", gettext_noop("Historique de médication"), DocumentClass.MEDICATION),
        DocumentType("11502-2", gettext_noop("Résultats de laboratoire"), DocumentClass.LABORATORY),
        DocumentType("18842-5", gettext_noop("Lettres de sortie"), DocumentClass.REPORT),
        DocumentType("11488-4", gettext_noop("Notes de consultation"), DocumentClass.REPORT),
        DocumentType("18748-4", gettext_noop("Comptes rendus d'imagerie"), DocumentClass.IMAGING),
        DocumentType("11369-6", gettext_noop("Vaccinations"), DocumentClass.VACCINATION),
        DocumentType("60591-5", gettext_noop("Synthèse médicale du patient"), DocumentClass.SUMMARY),
        DocumentType("28651-8", gettext_noop("Notes de soins infirmiers"), DocumentClass.NURSING),
        DocumentType("11525-3", gettext_noop("Comptes rendus de grossesse"), DocumentClass.MATERNITY),
        DocumentType("11506-3", gettext_noop("Notes de kinésithérapie"), DocumentClass.REHABILITATION),
        DocumentType("11492-6", gettext_noop("Comptes rendus psychiatriques"), DocumentClass.PSYCHIATRY),
    ]
}


def class_label(class_code: str) -> str:
    return str(DocumentClass(class_code).label)


class Binder(models.TextChoices):
    """The patient record's binders ("classeurs")."""

    GENERAL = "general", _("Dossier général")
    MEDICATION = "medication", _("Médicaments")
    LABORATORY = "laboratory", _("Laboratoire")
    IMAGING = "imaging", _("Imagerie")
    HOSPITAL = "hospital", _("Séjours hospitaliers")
    PREVENTION = "prevention", _("Prévention")


DEFAULT_BINDER = {
    DocumentClass.PRESCRIPTION: Binder.MEDICATION,
    DocumentClass.MEDICATION: Binder.MEDICATION,
    DocumentClass.LABORATORY: Binder.LABORATORY,
    DocumentClass.IMAGING: Binder.IMAGING,
    DocumentClass.VACCINATION: Binder.PREVENTION,
    DocumentClass.REPORT: Binder.HOSPITAL,
}
