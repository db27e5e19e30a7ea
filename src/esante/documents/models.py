import uuid

from django.db import models
from django.db.models.functions import Coalesce

from esante.access.policy import Confidentiality

from .types import DOCUMENT_TYPES, Binder, class_label


class MediaType(models.TextChoices):
    PDF = "application/pdf", "PDF"
    CDA = "application/hl7-cda+xml", "HL7 CDA R2"
    TEXT = "text/plain", "Texte"


class Document(models.Model):
    """A clinical document of a patient's shared record.

    Content lives in the storage backend (``STORAGES["default"]``) under ``content``, with its
    SHA-256 and size recorded. Never deleted: a correction supersedes it or marks it
    ``entered-in-error``. Addressed in URLs by ``public_id``.
    """

    class Status(models.TextChoices):
        CURRENT = "current", "Actuel"
        SUPERSEDED = "superseded", "Remplacé"
        ENTERED_IN_ERROR = "entered-in-error", "Saisi par erreur"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT, related_name="documents")
    type_code = models.CharField(
        "type (LOINC)", max_length=16, choices=[(c, t.label) for c, t in DOCUMENT_TYPES.items()]
    )
    class_code = models.CharField("classe", max_length=32)
    title = models.CharField("titre", max_length=300)
    clinical_at = models.DateTimeField("date clinique")
    author = models.ForeignKey(
        "accounts.Professional",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="authored_documents",
    )
    author_name = models.CharField("auteur", max_length=200)
    source_system = models.CharField("source", max_length=100)
    binder = models.CharField("classeur", max_length=32, choices=Binder.choices)
    confidentiality = models.CharField(
        "confidentialité", max_length=1, choices=Confidentiality.choices, default=Confidentiality.NORMAL
    )
    media_type = models.CharField("format", max_length=64, choices=MediaType.choices)
    content = models.FileField("contenu", upload_to="documents/%Y/%m/", max_length=300)
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField("taille (octets)")
    status = models.CharField("statut", max_length=20, choices=Status.choices, default=Status.CURRENT)
    hidden_by_patient = models.BooleanField("masqué par le patient", default=False)
    external_id = models.CharField("identifiant source", max_length=200, blank=True)
    text_content = models.TextField("texte extrait", blank=True, editable=False)
    submitted_at = models.DateTimeField("reçu le", auto_now_add=True)

    class Meta:
        verbose_name = "document"
        indexes = [
            models.Index(fields=["patient", "-clinical_at"], name="document_patient_date_idx"),
            models.Index(fields=["patient", "submitted_at"], name="document_patient_new_idx"),
            # The "Vue documentaire" tree and its filter choices read only this index (no table row):
            # the counts per class and type in its order, the newest documents of a class and type
            # as the first entries of their range, the distinct types, binders and authors, each
            # under the viewer's visibility filter
            # (``esante.access.policy.readable_documents_filter``: class, confidentiality, hidden,
            # author; ``visible_documents``: status), evaluated on the index's own columns.
            models.Index(
                fields=[
                    "patient",
                    "class_code",
                    "type_code",
                    "-clinical_at",
                    "-id",
                    "confidentiality",
                    "hidden_by_patient",
                    "author",
                    "status",
                    "binder",
                    "author_name",
                ],
                name="document_patient_tree_idx",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["source_system", "external_id"],
                condition=~models.Q(external_id=""),
                name="document_unique_external_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.clinical_at:%d/%m/%Y %H:%M})"

    @property
    def class_label(self) -> str:
        return class_label(self.class_code)

    @property
    def type_label(self) -> str:
        document_type = DOCUMENT_TYPES.get(self.type_code)
        return document_type.display_label if document_type else self.type_code


#: The columns a ``DocumentSummary`` row groups a patient's documents by: every column the
#: viewer's visibility filter reads (``esante.access.policy.readable_documents_filter``: class,
#: confidentiality, hidden, author; ``visible_documents``: status) and every column the tree and
#: the filter choices show (type; binder and author name).
SUMMARY_KEY = (
    "patient_id",
    "class_code",
    "type_code",
    "confidentiality",
    "hidden_by_patient",
    "author_id",
    "status",
    "binder",
    "author_name",
)


class DocumentSummary(models.Model):
    """How many of a patient's documents share one value of every ``SUMMARY_KEY`` column.

    The "Vue documentaire" counts and its filter choices read these rows (tens for a patient of
    thousands of documents) under the same visibility filter as the documents themselves: the
    field names are the document's, so ``readable_documents_filter`` applies unchanged.

    Written by database triggers on ``documents_document`` only (``esante.documents.summary``):
    every insert, update of a key column and delete, by any path — ``document_submit``, the
    patient's hide/show, a status change, ``bulk_create``, ``COPY`` — adjusts the rows in the same
    statement, hence the same transaction. Nothing in Python writes here but the repair of
    ``esante check_document_summary --repair``.
    """

    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    class_code = models.CharField(max_length=32)
    type_code = models.CharField(max_length=16)
    confidentiality = models.CharField(max_length=1)
    hidden_by_patient = models.BooleanField()
    # Derived from documents whose own foreign keys protect the patient and the author: no
    # constraint and no index of their own here (the unique key starts with the patient), so
    # that the triggers add no check and no index write.
    author = models.ForeignKey(
        "accounts.Professional",
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    status = models.CharField(max_length=20)
    binder = models.CharField(max_length=32)
    author_name = models.CharField(max_length=200)
    document_count = models.PositiveIntegerField()

    class Meta:
        verbose_name = "résumé des documents"
        constraints = [
            # One row per key; a document without author counts under author 0 (no professional
            # has id 0), so that the triggers' upsert finds its row on both databases.
            models.UniqueConstraint(
                "patient",
                "class_code",
                "type_code",
                "confidentiality",
                "hidden_by_patient",
                Coalesce("author", 0),
                "status",
                "binder",
                "author_name",
                name="document_summary_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.patient_id} {self.class_code}/{self.type_code}: {self.document_count}"


class Prescription(models.Model):
    """The structured side of a medication prescription document, and its dispensation state.

    ``state_version`` grows by one at each dispensation or withdrawal: a dispensation attempt
    names the version it was based on and is refused when it is stale.
    """

    class DispensationState(models.TextChoices):
        OPEN = "open", "Non dispensée"
        PARTIAL = "partial", "Dispensée partiellement"
        DISPENSED = "dispensed", "Dispensée entièrement"

    document = models.OneToOneField(Document, on_delete=models.PROTECT, related_name="prescription")
    prescribed_at = models.DateTimeField("date de prescription")
    prescriber_name = models.CharField("prescripteur", max_length=200)
    dispensation_state = models.CharField(
        "dispensation", max_length=16, choices=DispensationState.choices, default=DispensationState.OPEN
    )
    state_version = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "prescription"

    def __str__(self) -> str:
        return f"Prescription {self.document.public_id}"


class PrescriptionLine(models.Model):
    """One prescribed medication: what, how, how much."""

    prescription = models.ForeignKey(Prescription, on_delete=models.PROTECT, related_name="lines")
    position = models.PositiveSmallIntegerField()
    medication = models.CharField("médicament", max_length=300)
    medication_code = models.CharField("code", max_length=64, blank=True)
    dosage = models.CharField("posologie", max_length=500, blank=True)
    quantity = models.PositiveIntegerField("quantité prescrite")
    unit = models.CharField("unité", max_length=50, blank=True)

    class Meta:
        verbose_name = "ligne de prescription"
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["prescription", "position"], name="prescription_line_pos")
        ]

    def __str__(self) -> str:
        return f"{self.medication} × {self.quantity}"
