from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A login: a health professional (username = matricule) or an agency operator."""

    class Meta:
        verbose_name = "utilisateur"


class Profession(models.TextChoices):
    PHARMACIST = "pharmacist", "Pharmacien"
    DOCTOR = "doctor", "Médecin"
    DENTIST = "dentist", "Médecin-dentiste"
    NURSE = "nurse", "Infirmier"
    MIDWIFE = "midwife", "Sage-femme"
    PHYSIOTHERAPIST = "physiotherapist", "Kinésithérapeute"


class Professional(models.Model):
    """A health professional from the national register.

    Registered by the agency (state ``registered``), activated by the professional through the
    five-step wizard (``active``), possibly suspended by the agency. The matricule is the login.
    """

    class State(models.TextChoices):
        REGISTERED = "registered", "Enregistré"
        ACTIVE = "active", "Actif"
        SUSPENDED = "suspended", "Suspendu"

    user = models.OneToOneField(User, on_delete=models.PROTECT, related_name="professional")
    matricule = models.CharField("matricule", max_length=13, unique=True)
    profession = models.CharField("profession", max_length=32, choices=Profession.choices)
    last_name = models.CharField("nom", max_length=100)
    first_name = models.CharField("prénom", max_length=100)
    email = models.EmailField("e-mail professionnel")
    mobile = models.CharField("téléphone portable", max_length=32, blank=True)
    organisation = models.CharField("organisation", max_length=200, blank=True)
    state = models.CharField("état", max_length=16, choices=State.choices, default=State.REGISTERED)
    terms_version = models.CharField("version des CGU acceptée", max_length=16, blank=True)
    terms_accepted_at = models.DateTimeField("CGU acceptées le", null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "professionnel de santé"
        verbose_name_plural = "professionnels de santé"
        indexes = [models.Index(fields=["last_name", "first_name"])]

    def __str__(self) -> str:
        return f"{self.last_name.upper()} {self.first_name} ({self.get_profession_display()})"
