"""Software clients of the API and what the authorization server keeps about them.

Nothing secret is stored in clear: client secrets are hashed with the platform's password
hasher; authorization codes, access tokens and refresh tokens are stored as SHA-256 digests
(they are long random values, so a fast digest suffices), and compared by looking the digest up.
"""

import hashlib
import time

from django.conf import settings
from django.contrib.auth.hashers import check_password
from django.db import models
from django.utils import timezone


def now_seconds() -> int:
    """Seconds since the epoch, as Authlib counts token times."""
    return int(time.time())


def token_digest(value: str) -> str:
    """The stored form of a code or token."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class SoftwareClient(models.Model):
    """A registered software ("logiciel"): prescribing or pharmacy software used by professionals
    (``interactive``: authorization code + PKCE, acting for the professional who consents), or an
    eService acting on its own (``backend``: client credentials, with a signed JWT assertion
    checked against its registered keys, or with a client secret as IHE IUA allows)."""

    class Kind(models.TextChoices):
        INTERACTIVE = "interactive", "Logiciel utilisé par un professionnel"
        BACKEND = "backend", "Service sans utilisateur"

    class AuthMethod(models.TextChoices):
        NONE = "none", "Client public (PKCE)"
        SECRET = "client_secret_basic", "Secret client"
        PRIVATE_KEY_JWT = "private_key_jwt", "Assertion JWT signée (RFC 7523)"

    client_id = models.CharField("identifiant client", max_length=64, unique=True)
    name = models.CharField("nom du logiciel", max_length=200)
    organisation = models.CharField("organisation", max_length=200)
    kind = models.CharField("type", max_length=16, choices=Kind.choices)
    auth_method = models.CharField("authentification", max_length=32, choices=AuthMethod.choices)
    secret_hash = models.CharField(max_length=200, blank=True)
    redirect_uris = models.TextField("adresses de retour", blank=True, help_text="une par ligne")
    jwks = models.JSONField("clés publiques (JWKS)", null=True, blank=True)
    jwks_uri = models.URLField("adresse des clés publiques (JWKS)", blank=True)
    scopes = models.TextField("scopes autorisés", help_text="séparés par des espaces")
    active = models.BooleanField("actif", default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "logiciel client"
        verbose_name_plural = "logiciels clients"

    def __str__(self) -> str:
        return f"{self.name} ({self.organisation})"

    # -- Authlib's ClientMixin ------------------------------------------------------------------
    def get_client_id(self) -> str:
        return self.client_id

    def redirect_uri_list(self) -> list[str]:
        return [uri.strip() for uri in self.redirect_uris.splitlines() if uri.strip()]

    def get_default_redirect_uri(self) -> str | None:
        uris = self.redirect_uri_list()
        return uris[0] if uris else None

    def get_allowed_scope(self, scope: str) -> str:
        allowed = set(self.scopes.split())
        if self.kind == self.Kind.INTERACTIVE:
            allowed.add("offline_access")
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uri_list()

    def check_client_secret(self, client_secret: str) -> bool:
        return bool(self.secret_hash) and check_password(client_secret, self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if not self.active:
            return False
        if self.auth_method == self.AuthMethod.SECRET:
            return method in ("client_secret_basic", "client_secret_post")
        return method == self.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return self.active and self.kind == self.Kind.INTERACTIVE and response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        if not self.active:
            return False
        if self.kind == self.Kind.INTERACTIVE:
            return grant_type in ("authorization_code", "refresh_token")
        return grant_type == "client_credentials"


class SoftwareAuthorisation(models.Model):
    """A professional's consent ("Autoriser") to a software acting for them with ``scope``.

    Listed on the portal under "Logiciels autorisés"; revoking it there revokes every token
    issued under it at once."""

    client = models.ForeignKey(SoftwareClient, on_delete=models.PROTECT, related_name="authorisations")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    scope = models.TextField()
    granted_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "revoked_at"], name="fhir_authorisation_user_idx")]

    def __str__(self) -> str:
        return f"{self.client} pour {self.user}"


class AuthorizationCode(models.Model):
    """An authorization code (stored hashed), valid a minute, used once, bound to its PKCE
    challenge (S256) and to the consent it came from."""

    code_digest = models.CharField(max_length=64, unique=True)
    client = models.ForeignKey(SoftwareClient, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    authorisation = models.ForeignKey(SoftwareAuthorisation, on_delete=models.CASCADE, related_name="+")
    redirect_uri = models.TextField()
    scope = models.TextField()
    code_challenge = models.CharField(max_length=128)
    code_challenge_method = models.CharField(max_length=8)
    auth_time = models.IntegerField(default=now_seconds)

    def __str__(self) -> str:
        return f"code de {self.client}"

    # Authlib's AuthorizationCodeMixin
    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_auth_time(self) -> int:
        return self.auth_time

    def is_expired(self) -> bool:
        return self.auth_time + int(settings.ESANTE_FHIR_CODE_SECONDS) < time.time()


class Token(models.Model):
    """An access token (and its refresh token), both stored hashed. ``user`` is the professional
    the token acts for (none for a backend service); ``authorisation`` the consent behind it."""

    client = models.ForeignKey(SoftwareClient, on_delete=models.PROTECT, related_name="tokens")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    authorisation = models.ForeignKey(
        SoftwareAuthorisation, null=True, blank=True, on_delete=models.PROTECT, related_name="tokens"
    )
    token_type = models.CharField(max_length=16, default="Bearer")
    access_digest = models.CharField(max_length=64, unique=True)
    refresh_digest = models.CharField(max_length=64, unique=True, null=True, blank=True)
    scope = models.TextField()
    issued_at = models.IntegerField()
    expires_in = models.IntegerField()
    refresh_expires_at = models.IntegerField(null=True, blank=True)
    access_revoked = models.BooleanField(default=False)
    refresh_revoked = models.BooleanField(default=False)
    #: Patients shown to the software by a search a moment ago (public id -> time shown): the
    #: API's counterpart of the portal session's list, for ``$declare-access``. Carried over
    #: when the token is refreshed.
    found_patients = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"jeton de {self.client}"

    # Authlib's TokenMixin
    def check_client(self, client: SoftwareClient) -> bool:
        return self.client_id == client.pk

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def get_expires_at(self) -> int:
        return self.issued_at + self.expires_in

    def is_expired(self) -> bool:
        return self.get_expires_at() < time.time()

    def is_revoked(self) -> bool:
        if self.access_revoked or not self.client.active:
            return True
        return self.authorisation is not None and self.authorisation.revoked_at is not None

    def is_refresh_usable(self) -> bool:
        return (
            not self.refresh_revoked
            and not self.is_revoked_authorisation()
            and (self.refresh_expires_at or 0) > time.time()
        )

    def is_revoked_authorisation(self) -> bool:
        return self.authorisation is not None and self.authorisation.revoked_at is not None

    def get_user(self):  # type: ignore[no-untyped-def]
        return self.user

    def get_client(self) -> SoftwareClient:
        return self.client


class AssertionJti(models.Model):
    """The ``jti`` of each client assertion seen, until it expires: a replay is refused."""

    client = models.ForeignKey(SoftwareClient, on_delete=models.CASCADE, related_name="+")
    jti = models.CharField(max_length=200)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "jti"], name="fhir_assertion_jti_unique")]

    def __str__(self) -> str:
        return self.jti


class ApiThrottle(models.Model):
    """A per-client-network counter of the API's token requests (``scope=token``) or refused
    requests (``scope=refusal``: no token, a bad one) within a fixed window, kept in the database
    so that every application server counts the same (rules in ``esante.fhir.throttling``)."""

    class Scope(models.TextChoices):
        TOKEN = "token", "demandes de jeton"
        REFUSAL = "refusal", "requêtes refusées"

    scope = models.CharField(max_length=16, choices=Scope.choices)
    key = models.CharField(max_length=64)
    window_started_at = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)
    #: Requests answered 429 in the window and not traced one by one (one event says how many).
    suppressed = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="fhir_throttle_unique")]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}"
