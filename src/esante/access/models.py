"""Who may see which patient record, and what the patient decided.

Rows here are never deleted: a grant ends by expiring or being revoked (``revoked_at``), a block
ends by being lifted (``lifted_at``). The history of who could see what stays answerable.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from esante.patients.models import Patient


class AccessGrant(models.Model):
    """A professional's access to one patient's record, for a limited time.

    ``care`` is the declared therapeutic link (guide p.13, "J'accède au dossier du patient en
    engageant ma responsabilité."); ``own-documents`` is read-only on the documents the
    professional authored; ``emergency`` ("bris de glace") is a short access for doctors, nurses
    and midwives, flagged in the trail. A grant is current while ``now < expires_at`` and it is
    not revoked; an expired or revoked grant behaves exactly like no grant.
    """

    class Mode(models.TextChoices):
        CARE = "care", "Lien thérapeutique"
        OWN_DOCUMENTS = "own-documents", "Lecture seule de mes documents"
        EMERGENCY = "emergency", "Accès en urgence (bris de glace)"

    professional = models.ForeignKey(
        "accounts.Professional",
        verbose_name="professionnel",
        on_delete=models.PROTECT,
        related_name="access_grants",
    )
    patient = models.ForeignKey(
        "patients.Patient", verbose_name="patient", on_delete=models.PROTECT, related_name="access_grants"
    )
    mode = models.CharField("mode", max_length=16, choices=Mode.choices)
    motif = models.CharField("motif", max_length=500, blank=True)
    conditions_version = models.CharField(
        "version des conditions d'accès acceptée", max_length=16, blank=True
    )
    granted_at = models.DateTimeField("accordé le", default=timezone.now)
    expires_at = models.DateTimeField("expire le")
    revoked_at = models.DateTimeField("révoqué le", null=True, blank=True)
    revoked_reason = models.CharField("motif de révocation", max_length=500, blank=True)

    class Meta:
        verbose_name = "accès à un dossier"
        verbose_name_plural = "accès aux dossiers"
        indexes = [
            models.Index(fields=["professional", "patient", "expires_at"], name="grant_pro_patient_idx"),
            models.Index(fields=["professional", "expires_at"], name="grant_pro_expires_idx"),
            models.Index(fields=["patient", "mode", "expires_at"], name="grant_patient_mode_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("granted_at")), name="grant_expires_after"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_mode_display()} — {self.professional_id} → {self.patient_id}"

    def is_current(self, at: object = None) -> bool:
        moment = at or timezone.now()
        return self.revoked_at is None and self.granted_at <= moment < self.expires_at  # type: ignore[operator]


class PatientBlock(models.Model):
    """The patient refuses one professional any access to the record.

    Set by an operator on the patient's request (admin, for now). While the block is not lifted,
    the professional cannot obtain an access, and grants they already hold stop working.
    """

    patient = models.ForeignKey(
        "patients.Patient", verbose_name="patient", on_delete=models.PROTECT, related_name="blocks"
    )
    professional = models.ForeignKey(
        "accounts.Professional", verbose_name="professionnel", on_delete=models.PROTECT, related_name="blocks"
    )
    reason = models.CharField("motif", max_length=500, blank=True)
    created_at = models.DateTimeField("créé le", default=timezone.now)
    lifted_at = models.DateTimeField("levé le", null=True, blank=True)

    class Meta:
        verbose_name = "refus d'accès par le patient"
        verbose_name_plural = "refus d'accès par les patients"
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "professional"],
                condition=Q(lifted_at__isnull=True),
                name="one_active_block",
            ),
        ]
        indexes = [models.Index(fields=["professional", "patient"], name="block_pro_patient_idx")]

    def __str__(self) -> str:
        return f"{self.patient_id} bloque {self.professional_id}"


class RecordOpening(models.Model):
    """One opening of a patient's record by a professional ("Mes derniers dossiers", "Parcours")."""

    professional = models.ForeignKey(
        "accounts.Professional", verbose_name="professionnel", on_delete=models.PROTECT, related_name="+"
    )
    patient = models.ForeignKey(
        "patients.Patient", verbose_name="patient", on_delete=models.PROTECT, related_name="+"
    )
    grant = models.ForeignKey(
        AccessGrant, verbose_name="accès", on_delete=models.PROTECT, related_name="openings"
    )
    opened_at = models.DateTimeField("ouvert le", default=timezone.now)

    class Meta:
        verbose_name = "ouverture de dossier"
        verbose_name_plural = "ouvertures de dossiers"
        indexes = [
            models.Index(fields=["professional", "opened_at"], name="opening_pro_time_idx"),
            models.Index(fields=["professional", "patient", "opened_at"], name="opening_pro_patient_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.professional_id} → {self.patient_id} ({self.opened_at:%Y-%m-%d %H:%M})"


class PatientJournal(Patient):
    """A patient seen from the operators' side: their access journal (admin, CSV export)."""

    class Meta:
        proxy = True
        verbose_name = "journal d'accès d'un patient"
        verbose_name_plural = "journaux d'accès des patients"
