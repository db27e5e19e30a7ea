import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _

from .folding import fold


class Patient(models.Model):
    """An entry of the patient index, and the owner of a shared record ("dossier").

    Addressed in URLs by ``public_id`` (opaque), never by matricule. The ``*_folded`` columns
    hold the search form of the names (see ``folding``) and are kept in step by ``save``.
    """

    class Sex(models.TextChoices):
        FEMALE = "F", "Féminin"
        MALE = "M", "Masculin"
        OTHER = "X", "Autre"

    class Taux(models.IntegerChoices):
        T40 = 40, "40%"
        T80 = 80, "80%"
        T100 = 100, "100%"

    class DossierState(models.TextChoices):
        ACTIVE = "active", _("Actif")
        CLOSED = "closed", _("Fermé")
        OPPOSED = "opposed", _("Opposition du patient")

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    matricule = models.CharField("matricule", max_length=13, unique=True)
    birth_name = models.CharField("nom de naissance", max_length=100)
    usage_name = models.CharField("nom d'usage", max_length=100, blank=True)
    first_names = models.CharField("prénoms", max_length=150)
    birth_date = models.DateField("date de naissance", db_index=True)
    sex = models.CharField("sexe", max_length=1, choices=Sex.choices)
    referring_doctor = models.ForeignKey(
        "accounts.Professional",
        verbose_name="médecin référent",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="referred_patients",
    )
    taux = models.PositiveSmallIntegerField("taux", choices=Taux.choices, default=Taux.T80)
    dossier_number = models.CharField("n° dossier", max_length=20, blank=True)
    platform_identifier = models.CharField("identifiant", max_length=20, unique=True)
    dossier_state = models.CharField(
        "état du dossier", max_length=16, choices=DossierState.choices, default=DossierState.ACTIVE
    )
    alerts = models.CharField("alertes administratives", max_length=200, blank=True)
    birth_name_folded = models.CharField(max_length=100, editable=False)
    usage_name_folded = models.CharField(max_length=100, editable=False, blank=True)
    first_names_folded = models.CharField(max_length=150, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "patient"
        indexes = [
            models.Index(fields=["birth_name_folded", "first_names_folded"], name="patient_birth_name_idx"),
            models.Index(fields=["usage_name_folded", "first_names_folded"], name="patient_usage_name_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.display_name} ({self.birth_date:%d/%m/%Y})"

    def save(self, *args: object, **kwargs: object) -> None:
        self.refresh_folded()
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    @property
    def display_name(self) -> str:
        return f"{(self.usage_name or self.birth_name).upper()} {self.first_names}"

    def refresh_folded(self) -> None:
        self.birth_name_folded = fold(self.birth_name)
        self.usage_name_folded = fold(self.usage_name)
        self.first_names_folded = fold(self.first_names)
