"""The patient's side of the platform: the patient's account, its activation letters and the
server-side state of an activation.

A patient's login is a ``accounts.User`` whose username is ``patient:<matricule>``: a patient who
is also a professional has two accounts that never meet (the professional logs in with the bare
matricule on the professionals' pages, the patient with the same matricule on the patients'
pages, each page family asking for its own principal).
"""

import datetime

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from esante.accounts.models import Letter

USERNAME_PREFIX = "patient:"


def patient_username(matricule: str) -> str:
    return f"{USERNAME_PREFIX}{matricule}"


class PatientAccount(models.Model):
    """A patient's account on the patient portal (« Espace patient »).

    Created by ``esante issue_patient_activation`` (state ``registered``), activated by the patient
    with the letter's code, a one-time code and a password (``active``), possibly suspended by the
    agency. ``notify_channel`` is where access notifications go ("" = none).
    """

    class State(models.TextChoices):
        REGISTERED = "registered", "Enregistré"
        ACTIVE = "active", "Actif"
        SUSPENDED = "suspended", "Suspendu"

    class Channel(models.TextChoices):
        NONE = "", _("Aucune notification")
        EMAIL = "email", _("E-mail")
        SMS = "sms", _("SMS")

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="patient_account"
    )
    patient = models.OneToOneField("patients.Patient", on_delete=models.PROTECT, related_name="account")
    state = models.CharField("état", max_length=16, choices=State.choices, default=State.REGISTERED)
    email = models.EmailField("e-mail", blank=True)
    mobile = models.CharField("téléphone portable", max_length=32, blank=True)
    notify_channel = models.CharField(
        "notifications", max_length=8, choices=Channel.choices, default=Channel.NONE, blank=True
    )
    # The audit sequence up to which accesses were reported by the last digest.
    digest_sequence = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField("activé le", null=True, blank=True)

    class Meta:
        verbose_name = "compte patient"
        verbose_name_plural = "comptes patients"

    # Set on the request's copy of the account when its holder acts for a represented patient
    # (``http.patient_required``): ``patient`` is then the represented patient. Never saved.
    acting_for: "Representation | None" = None
    represented: "list[Representation]" = []  # noqa: RUF012 - replaced per request, never mutated
    # Whether the holder represents anybody now (``http.active_patient_account``): the
    # representations are read only then.
    represents: bool = True

    def __str__(self) -> str:
        return f"compte patient {self.patient_id}"


class PatientLetter(Letter):
    """A patient's postal activation letter: the same rules as a professional's (``Letter``)."""

    account = models.ForeignKey(PatientAccount, on_delete=models.PROTECT, related_name="letters")

    class Meta:
        verbose_name = "courrier d'activation patient"
        verbose_name_plural = "courriers d'activation patients"
        indexes = [models.Index(fields=["account", "-issued_at"], name="espace_letter_account_idx")]

    def __str__(self) -> str:
        return f"courrier patient {self.pk}"


class PatientActivation(models.Model):
    """Server-side state of one patient activation (three steps: the letter's code — or a LuxTrust
    product or eID card naming the patient —; the password and the channel; the one-time code
    sent to that channel). The browser holds only ``key``;
    ``step`` is the one step accepted; nothing is written to the account before the last step."""

    class Step(models.IntegerChoices):
        CODE = 1, _("Code d'activation")
        SECURITY = 2, _("Sécurisation de votre compte")
        CONFIRMATION = 3, _("Confirmation")

    key = models.CharField(max_length=64, unique=True, editable=False)
    step = models.PositiveSmallIntegerField(choices=Step.choices, default=Step.CODE)
    terms_version = models.CharField(max_length=16)
    account = models.ForeignKey(
        PatientAccount, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    letter = models.ForeignKey(
        PatientLetter, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Step 1 by certificate instead of a letter: the certificate (public), bound at the last step.
    certificate_pem = models.TextField(blank=True)
    password_hash = models.CharField(max_length=256, blank=True)
    channel = models.CharField(max_length=8, blank=True)
    channel_address = models.CharField(max_length=254, blank=True)
    code_digest = models.CharField(max_length=64, blank=True)
    code_valid_until = models.DateTimeField(null=True, blank=True)
    code_sent_at = models.DateTimeField(null=True, blank=True)
    code_failed_attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "activation patient en cours"
        verbose_name_plural = "activations patients en cours"

    def __str__(self) -> str:
        return f"activation patient {self.pk} (étape {self.step})"


class Representation(models.Model):
    """A parent of a minor or a legal guardian, registered by the agency
    (``esante add_representative``), acts for the represented patient with their own patient
    account. Never deleted: a representation ends (``ends_at``) or is revoked."""

    class Kind(models.TextChoices):
        PARENT = "parent", _("Parent")
        GUARDIAN = "guardian", _("Tuteur légal")

    representative = models.ForeignKey(
        PatientAccount, on_delete=models.PROTECT, related_name="representations"
    )
    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT, related_name="representatives")
    kind = models.CharField("qualité", max_length=16, choices=Kind.choices)
    starts_at = models.DateTimeField("depuis le")
    ends_at = models.DateTimeField("jusqu'au", null=True, blank=True)
    revoked_at = models.DateTimeField("révoquée le", null=True, blank=True)
    registered_by = models.CharField("enregistrée par", max_length=150)

    class Meta:
        verbose_name = "représentation"
        verbose_name_plural = "représentations"
        constraints = [
            models.UniqueConstraint(
                fields=["representative", "patient"],
                condition=models.Q(revoked_at__isnull=True),
                name="espace_one_current_representation",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.representative_id} représente {self.patient_id}"

    def is_current(self, at: datetime.datetime) -> bool:
        return (
            self.revoked_at is None and self.starts_at <= at and (self.ends_at is None or at < self.ends_at)
        )


class PatientCertificate(models.Model):
    """A LuxTrust product or an eID card bound to a patient account (« Mes choix », after a
    password and code login); it then logs the patient in by itself, verified at each login."""

    account = models.ForeignKey(PatientAccount, on_delete=models.PROTECT, related_name="certificates")
    subject = models.CharField("sujet", max_length=500)
    issuer = models.CharField("émetteur", max_length=500)
    serial = models.CharField("numéro de série", max_length=64)
    fingerprint_sha256 = models.CharField("empreinte SHA-256", max_length=64, unique=True)
    not_after = models.DateTimeField("valide jusqu'au")
    bound_at = models.DateTimeField("associé le")

    class Meta:
        verbose_name = "certificat d'un patient"
        verbose_name_plural = "certificats des patients"

    def __str__(self) -> str:
        return self.subject
