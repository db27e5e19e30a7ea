"""Dispensations of medication prescriptions, their lines, and their certified true copies.

Nothing here is ever deleted: a dispensation recorded by mistake is withdrawn (``withdrawn_at``,
``withdrawn_by``, ``withdrawal_reason``) and stays; a certified copy that a later delivery or a
withdrawal made obsolete is marked ``superseded_at`` and stays verifiable as such.
"""

import uuid

from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Dispensation(models.Model):
    """One delivery at a pharmacy counter against a prescription (guide p.15–16).

    ``kind`` is ``full`` when the delivery leaves nothing owed on the prescription, ``partial``
    otherwise. ``based_on_version`` is the prescription's ``state_version`` the pharmacist saw:
    each dispensation moves the version on, so (prescription, based_on_version) is unique — a
    second attempt based on the same state cannot be recorded, even by a bug above the database.
    ``document`` is the eDispensation CDA filed in the patient's record for this delivery.
    """

    class Kind(models.TextChoices):
        FULL = "full", _("Dispensée entièrement")
        PARTIAL = "partial", _("Dispensée partiellement")

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    prescription = models.ForeignKey(
        "documents.Prescription", on_delete=models.PROTECT, related_name="dispensations"
    )
    pharmacist = models.ForeignKey(
        "accounts.Professional", verbose_name="pharmacien", on_delete=models.PROTECT, related_name="+"
    )
    pharmacist_name = models.CharField("nom du pharmacien", max_length=200)
    pharmacy = models.CharField("pharmacie", max_length=200)
    dispensed_at = models.DateTimeField("dispensée le")
    kind = models.CharField("dispensation", max_length=16, choices=Kind.choices)
    based_on_version = models.PositiveIntegerField("version de l'état consultée")
    document = models.OneToOneField(
        "documents.Document",
        verbose_name="document eDispensation",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="dispensation",
    )
    withdrawn_at = models.DateTimeField("retirée le", null=True, blank=True)
    withdrawn_by = models.ForeignKey(
        "accounts.Professional",
        verbose_name="retirée par",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    withdrawal_reason = models.CharField("motif du retrait", max_length=500, blank=True)

    class Meta:
        verbose_name = "dispensation"
        ordering = ["dispensed_at", "id"]
        indexes = [models.Index(fields=["prescription", "dispensed_at"], name="dispensation_rx_date_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["prescription", "based_on_version"], name="dispensation_one_per_version"
            ),
            models.CheckConstraint(
                condition=Q(withdrawn_at__isnull=True) | ~Q(withdrawal_reason=""),
                name="dispensation_withdrawal_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} le {self.dispensed_at:%d/%m/%Y %H:%M} ({self.pharmacy})"

    @property
    def is_withdrawn(self) -> bool:
        return self.withdrawn_at is not None

    @property
    def certified_copy(self) -> "CertifiedCopy | None":
        """The latest certified copy issued for this dispensation, if any."""
        return self.certified_copies.order_by("-created_at", "-id").first()


class DispensationLine(models.Model):
    """What was handed over for one prescription line, with the grid's three numbers as they stood."""

    dispensation = models.ForeignKey(Dispensation, on_delete=models.PROTECT, related_name="lines")
    prescription_line = models.ForeignKey(
        "documents.PrescriptionLine", on_delete=models.PROTECT, related_name="dispensed"
    )
    quantity_prescribed = models.PositiveIntegerField("quantité prescrite")
    quantity_delivered = models.PositiveIntegerField("quantité délivrée")
    quantity_remaining = models.PositiveIntegerField("reste à délivrer")

    class Meta:
        verbose_name = "ligne de dispensation"
        ordering = ["prescription_line__position"]
        constraints = [
            models.UniqueConstraint(
                fields=["dispensation", "prescription_line"], name="dispensation_line_once"
            ),
            models.CheckConstraint(
                condition=Q(quantity_delivered__lte=F("quantity_prescribed"))
                & Q(quantity_remaining__lte=F("quantity_prescribed")),
                name="dispensation_line_within_prescribed",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.prescription_line.medication}: {self.quantity_delivered}"


class CertifiedCopy(models.Model):
    """A certified true copy ("copie certifiée conforme") of a prescription and its filled grid.

    The verification code printed on it (and in its QR code) is 128 random bits; only its
    SHA-256 is stored, which is enough to find the copy and useless to forge one. The copy is
    current until a later delivery or a withdrawal supersedes it (``superseded_at``).
    """

    class SupersededBecause(models.TextChoices):
        # Shown on the verification page: "remplacée ... à la suite d'<une délivrance ultérieure>".
        DELIVERY = "delivery", _("une délivrance ultérieure")
        WITHDRAWAL = "withdrawal", _("un retrait de dispensation")

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    dispensation = models.ForeignKey(Dispensation, on_delete=models.PROTECT, related_name="certified_copies")
    code_digest = models.CharField(max_length=64, unique=True, editable=False)
    pdf = models.FileField("PDF", upload_to="copies/%Y/%m/", max_length=300)
    pdf_sha256 = models.CharField("empreinte SHA-256 du PDF", max_length=64)
    created_at = models.DateTimeField("émise le")
    superseded_at = models.DateTimeField("remplacée le", null=True, blank=True)
    superseded_because = models.CharField(
        "remplacée par", max_length=16, choices=SupersededBecause.choices, blank=True
    )

    class Meta:
        verbose_name = "copie certifiée conforme"
        verbose_name_plural = "copies certifiées conformes"
        indexes = [models.Index(fields=["dispensation", "created_at"], name="copy_dispensation_idx")]

    def __str__(self) -> str:
        return f"Copie certifiée du {self.created_at:%d/%m/%Y %H:%M}"

    @property
    def is_current(self) -> bool:
        return self.superseded_at is None


class VerificationAttempt(models.Model):
    """One use of the public verification page, counted per client address for its rate limit.

    Kept in the database so that every worker and every host counts the same attempts.
    """

    client_address = models.CharField(max_length=45)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "vérification de copie"
        indexes = [models.Index(fields=["client_address", "at"], name="verify_address_time_idx")]

    def __str__(self) -> str:
        return f"{self.client_address} {self.at:%Y-%m-%d %H:%M:%S}"
