import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.translation import gettext_lazy as _
from django_otp.models import CooldownMixin, SideChannelDevice, ThrottlingMixin, TimestampMixin


class User(AbstractUser):  # type: ignore[django-manager-missing]  # django-otp devices are untyped
    """A login: a health professional (username = matricule) or an agency operator."""

    class Meta:
        verbose_name = "utilisateur"


class Profession(models.TextChoices):
    PHARMACIST = "pharmacist", _("Pharmacien")
    DOCTOR = "doctor", _("Médecin")
    DENTIST = "dentist", _("Médecin-dentiste")
    NURSE = "nurse", _("Infirmier")
    MIDWIFE = "midwife", _("Sage-femme")
    PHYSIOTHERAPIST = "physiotherapist", _("Kinésithérapeute")


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


class Letter(models.Model):
    """What every postal activation letter is (a professional's here, a patient's in
    ``esante.espace``): a one-time activation code, never stored — only its HMAC-SHA256 under the
    platform's secret key (``codes.activation_code_digest``), compared in constant time; valid
    three months; used once; revoked when a new letter is issued for the same account; blocked
    after ``ESANTE_ACCOUNT_LOCK_AFTER_FAILURES`` wrong codes (from any address)."""

    code_digest = models.CharField(max_length=64, editable=False)
    issued_at = models.DateTimeField("émis le")
    expires_at = models.DateTimeField("expire le")
    used_at = models.DateTimeField("utilisé le", null=True, blank=True)
    revoked_at = models.DateTimeField("révoqué le", null=True, blank=True)
    failed_attempts = models.PositiveSmallIntegerField("essais erronés", default=0)
    issued_by = models.CharField("émis par", max_length=150, blank=True)

    class Meta:
        abstract = True

    @property
    def max_failed_attempts(self) -> int:
        return int(settings.ESANTE_ACCOUNT_LOCK_AFTER_FAILURES)

    def is_usable(self, at: datetime.datetime) -> bool:
        return (
            self.used_at is None
            and self.revoked_at is None
            and self.failed_attempts < self.max_failed_attempts
            and at < self.expires_at
        )


class ActivationLetter(Letter):
    """A professional's postal activation letter (``Letter``).

    Wrong codes (activation steps 2 and 4, from any address) count on the letter: after
    ``ESANTE_ACCOUNT_LOCK_AFTER_FAILURES`` (100) it is blocked and the helpdesk must issue a new
    one. Long before that, each client address is slowed down on its own (``throttling``), so an
    attacker cannot block a professional's letter with a few tries.
    """

    professional = models.ForeignKey(
        Professional, on_delete=models.PROTECT, related_name="activation_letters"
    )

    class Meta:
        verbose_name = "courrier d'activation"
        verbose_name_plural = "courriers d'activation"
        indexes = [models.Index(fields=["professional", "-issued_at"], name="accounts_letter_prof_idx")]

    def __str__(self) -> str:
        return f"courrier {self.pk} ({self.professional.matricule})"


class Certificate(models.Model):
    """A LuxTrust certificate (token, smartcard, eID) bound to a professional at activation step 1."""

    professional = models.ForeignKey(Professional, on_delete=models.PROTECT, related_name="certificates")
    subject = models.CharField("sujet", max_length=500)
    issuer = models.CharField("émetteur", max_length=500)
    serial = models.CharField("numéro de série", max_length=64)
    fingerprint_sha256 = models.CharField("empreinte SHA-256", max_length=64, unique=True)
    not_before = models.DateTimeField("valide du")
    not_after = models.DateTimeField("valide jusqu'au")
    bound_at = models.DateTimeField("associé le")

    class Meta:
        verbose_name = "certificat LuxTrust"
        verbose_name_plural = "certificats LuxTrust"

    def __str__(self) -> str:
        return self.subject


class ActivationWizard(models.Model):
    """Server-side state of one run of the five-step activation.

    The browser only holds the wizard's random key in its session; the step reached, the
    professional identified at step 2 and the factors chosen at step 4 live here. ``step`` is the
    one step the wizard may show or accept: views refuse any other, so no step can be skipped,
    and a completed wizard (``completed_at``) accepts nothing more, so none can be replayed.
    Nothing is written to the professional's account before step 5 completes.
    """

    class Step(models.IntegerChoices):
        CERTIFICATE = 1, _("Carte LuxTrust")
        CODE = 2, _("Code d'activation")
        INFORMATION = 3, _("Informations personnelles")
        SECURITY = 4, _("Sécurisation de votre compte")
        CONFIRMATION = 5, _("Confirmation")

    key = models.CharField(max_length=64, unique=True, editable=False)
    step = models.PositiveSmallIntegerField(choices=Step.choices, default=Step.CERTIFICATE)
    terms_version = models.CharField(max_length=16)
    terms_accepted_at = models.DateTimeField()
    professional = models.ForeignKey(
        Professional, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    letter = models.ForeignKey(
        ActivationLetter, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The certificate presented at step 1, kept until step 2 identifies the account.
    certificate_pem = models.TextField(blank=True)
    password_hash = models.CharField(max_length=256, blank=True)
    channel = models.CharField(max_length=8, blank=True)
    channel_address = models.CharField(max_length=254, blank=True)
    code_digest = models.CharField(max_length=64, blank=True)
    code_valid_until = models.DateTimeField(null=True, blank=True)
    code_sent_at = models.DateTimeField(null=True, blank=True)
    code_failed_attempts = models.PositiveSmallIntegerField(default=0)
    channel_verified = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "activation en cours"
        verbose_name_plural = "activations en cours"

    def __str__(self) -> str:
        return f"activation {self.pk} (étape {self.step})"


class CertificatePresentation(models.Model):
    """One presentation of a LuxTrust certificate on the dedicated TLS origin.

    The portal never asks for a certificate. Its "Connexion" button (activation step 1 or login)
    opens a presentation bound to the browser's session (and, for the activation, to the wizard)
    and sends the browser to the certificate origin with a request nonce. The origin, where nginx
    (or the demo's own TLS server) has verified the certificate, verifies it again, records it or
    the refusal, and sends the browser back to the portal with a token valid one minute. The portal
    consumes the token once, in the session that opened the presentation, and only then binds the
    certificate or logs the professional in.

    Neither the nonce nor the token is stored in clear (keyed digests, ``codes.certificate_digest``).
    """

    class Purpose(models.TextChoices):
        ACTIVATION = "activation", "activation (étape 1)"
        LOGIN = "login", "connexion"

    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    wizard = models.ForeignKey(
        ActivationWizard, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    request_digest = models.CharField(max_length=64, unique=True, editable=False)
    request_expires_at = models.DateTimeField()
    return_url = models.CharField(max_length=500)
    presented_at = models.DateTimeField(null=True, blank=True)
    certificate_pem = models.TextField(blank=True)
    refusal_reason = models.CharField(max_length=32, blank=True)
    refusal_message = models.CharField(max_length=300, blank=True)
    token_digest = models.CharField(max_length=64, null=True, blank=True, unique=True, editable=False)
    token_expires_at = models.DateTimeField(null=True, blank=True)
    consumed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        verbose_name = "présentation de certificat"
        verbose_name_plural = "présentations de certificat"

    def __str__(self) -> str:
        return f"présentation {self.pk} ({self.purpose})"


class SmsDevice(TimestampMixin, CooldownMixin, ThrottlingMixin, SideChannelDevice):
    """A django-otp device delivering one-time codes by SMS to ``number``.

    Codes are generated and checked by ``esante.accounts.otp`` (hashed, 5 minutes, 3 tries),
    never by the inherited ``generate_challenge``/``verify_token`` that keep the code in clear.
    """

    number: "models.CharField[str, str]" = models.CharField("numéro de mobile", max_length=32)

    class Meta(SideChannelDevice.Meta):
        verbose_name = "appareil SMS"
        verbose_name_plural = "appareils SMS"

    def get_cooldown_duration(self) -> int:
        return int(settings.ESANTE_OTP_RESEND_SECONDS)

    def get_throttle_factor(self) -> int:
        return 1


class LoginThrottle(models.Model):
    """Failure counters kept in the database (rules in ``esante.accounts.throttling``).

    Account and client address (``scope=account_address`` for logins, ``activation_pair`` for
    activation codes; ``key`` = "matricule|address"): after three failures each further one delays
    that address's next try on that account (1 minute, doubling, capped at an hour); a success
    from that address resets it. Account (``scope=account``, key = matricule): the consecutive
    failures from every address; ``ESANTE_ACCOUNT_LOCK_AFTER_FAILURES`` (100) lock the password and
    code login for 15 minutes, doubling at each further lock; a success resets it; it also
    remembers when the professional was last told of an attack (``notified_at``). Client network
    (``scope=address``, and ``activation`` for activation codes; an IPv4 address or an IPv6 /64):
    beyond 20 failures within an hour, each failure delays the network's next try on an account
    it never logged in to (1 minute, doubling, capped at an hour). Nothing is permanent: the
    helpdesk lifts an account's counters (``login_unlock``), an operator a network's
    (``login_throttle_lift``), and ``esante purge_throttles`` removes the rows no longer needed.
    """

    class Scope(models.TextChoices):
        ACCOUNT = "account", "compte"
        ADDRESS = "address", "adresse"
        ACTIVATION = "activation", "adresse (activation)"
        PAIR = "account_address", "compte et adresse"
        ACTIVATION_PAIR = "activation_pair", "compte et adresse (activation)"

    scope = models.CharField(max_length=16, choices=Scope.choices)
    key = models.CharField(max_length=64)
    failures = models.PositiveIntegerField(default=0)
    lock_count = models.PositiveIntegerField(default=0)
    locked_until = models.DateTimeField(null=True, blank=True)
    window_started_at = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    # Pairs only: the last success of the account from that network (exempt from its coarse limit).
    succeeded_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "compteur d'échecs de connexion"
        verbose_name_plural = "compteurs d'échecs de connexion"
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="accounts_throttle_scope_key")]

    def __str__(self) -> str:
        return f"{self.scope}:{self.key}"
