"""The OAuth 2.0 authorization server, on Authlib's Django integration.

Grants: SMART App Launch standalone (authorization code, PKCE with S256 only, rotating refresh
tokens) for software a professional uses; SMART Backend Services (client credentials with a
``private_key_jwt`` assertion, RFC 7523, verified with the client's registered JWKS; ``jti``
replay refused) and IHE IUA client credentials with a client secret for backend services.
Authlib does the protocol; this module only says where things are stored (hashed) and traces
what is issued. OAuth error descriptions are ASCII (RFC 6749 allows no other characters), so
they are in English; the pages a professional sees are in French.
"""

import datetime
import json
import time
import urllib.request
from typing import Any

from authlib.integrations.django_oauth2 import AuthorizationServer, BearerTokenValidator, ResourceProtector
from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError, grants
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from esante.audit.catalogue import AuditAction, AuditOutcome
from esante.audit.services import audit_record
from esante.core.http import client_address

from .models import (
    AssertionJti,
    AuthorizationCode,
    SoftwareAuthorisation,
    SoftwareClient,
    Token,
    now_seconds,
    token_digest,
)


def _address(request: Any) -> str | None:
    django_request = getattr(request, "_request", None)
    return client_address(django_request) if django_request is not None else None


class EsanteAuthorizationServer(AuthorizationServer):
    """Authlib's Django server, storing tokens as digests and tracing each issue."""

    def query_client(self, client_id: str) -> SoftwareClient | None:
        return SoftwareClient.objects.filter(client_id=str(client_id)[:64], active=True).first()

    @transaction.atomic
    def save_token(self, token: dict[str, Any], request: Any) -> Token:
        client: SoftwareClient = request.client
        authorisation, found = None, {}
        if getattr(request, "authorization_code", None) is not None:
            authorisation = request.authorization_code.authorisation
        elif getattr(request, "refresh_token", None) is not None:
            authorisation = request.refresh_token.authorisation
            found = request.refresh_token.found_patients
        now = now_seconds()
        refresh = token.get("refresh_token")
        item = Token.objects.create(
            client=client,
            user=request.user if request.user is not None else None,
            authorisation=authorisation,
            token_type=token.get("token_type", "Bearer"),
            access_digest=token_digest(token["access_token"]),
            refresh_digest=token_digest(refresh) if refresh else None,
            scope=token.get("scope", ""),
            issued_at=now,
            expires_in=int(token["expires_in"]),
            refresh_expires_at=now + int(settings.ESANTE_FHIR_REFRESH_SECONDS) if refresh else None,
            found_patients=found,
        )
        if authorisation is not None:
            SoftwareAuthorisation.objects.filter(pk=authorisation.pk).update(last_used_at=timezone.now())
        audit_record(
            action=AuditAction.API_TOKEN,
            actor=request.user,
            object_type="SoftwareClient",
            object_id=client.client_id,
            client_address=_address(request),
            details={
                "client": client.client_id,
                "grant_type": request.payload.grant_type,
                "scope": item.scope,
            },
        )
        return item


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    """Authorization code for interactive software: PKCE S256 required of every client."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"]

    def validate_authorization_request(self) -> str:
        redirect_uri = super().validate_authorization_request()
        data = self.request.payload.data
        if not data.get("code_challenge") or data.get("code_challenge_method") != "S256":
            raise InvalidRequestError(
                "PKCE is required: code_challenge with code_challenge_method=S256.",
                state=self.request.payload.state,
                redirect_uri=redirect_uri,
            )
        return redirect_uri

    @transaction.atomic
    def save_authorization_code(self, code: str, request: Any) -> AuthorizationCode:
        """The consent becomes durable here: the authorisation ("Logiciels autorisés") and its
        first code, traced as ``api.authorise``."""
        client: SoftwareClient = request.client
        scope = request.payload.scope or ""
        authorisation = SoftwareAuthorisation.objects.create(client=client, user=request.user, scope=scope)
        item = AuthorizationCode.objects.create(
            code_digest=token_digest(code),
            client=client,
            user=request.user,
            authorisation=authorisation,
            redirect_uri=request.payload.redirect_uri or "",
            scope=scope,
            code_challenge=request.payload.data["code_challenge"],
            code_challenge_method="S256",
        )
        audit_record(
            action=AuditAction.API_AUTHORISE,
            actor=request.user,
            object_type="SoftwareClient",
            object_id=client.client_id,
            client_address=_address(request),
            details={"client": client.client_id, "scope": scope},
        )
        return item

    def query_authorization_code(self, code: str, client: SoftwareClient) -> AuthorizationCode | None:
        item = (
            AuthorizationCode.objects.select_related("authorisation", "user")
            .filter(code_digest=token_digest(code), client=client)
            .first()
        )
        if item is None or item.is_expired() or item.authorisation.revoked_at is not None:
            return None
        return item

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        # Used once: a second exchange of the same code finds nothing.
        AuthorizationCode.objects.filter(pk=authorization_code.pk).delete()

    def authenticate_user(self, authorization_code: AuthorizationCode) -> Any:
        return authorization_code.user


class S256Only(CodeChallenge):
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]


class RefreshTokenGrant(grants.RefreshTokenGrant):
    """Refresh tokens rotate: each use issues a new pair and revokes the old one. A refresh
    token presented again after its rotation revokes every token of that consent (theft)."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        item = (
            Token.objects.select_related("authorisation", "client", "user")
            .filter(refresh_digest=token_digest(refresh_token))
            .first()
        )
        if item is None:
            return None
        if item.refresh_revoked and item.authorisation_id is not None:
            Token.objects.filter(authorisation_id=item.authorisation_id).update(
                access_revoked=True, refresh_revoked=True
            )
            return None
        return item if item.is_refresh_usable() else None

    def authenticate_user(self, refresh_token: Token) -> Any:
        return refresh_token.user

    def revoke_old_credential(self, refresh_token: Token) -> None:
        Token.objects.filter(pk=refresh_token.pk).update(access_revoked=True, refresh_revoked=True)


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    """Backend services: a signed JWT assertion (SMART Backend Services) or a secret (IHE IUA)."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["private_key_jwt", "client_secret_basic", "client_secret_post"]


class PrivateKeyJwtAssertion(JWTBearerClientAssertion):
    """RFC 7523 client authentication with the client's registered keys (inline JWKS or URL).

    The audience is the token endpoint; ``exp`` at most five minutes ahead (SMART Backend
    Services); each ``jti`` is accepted once until the assertion expires."""

    CLIENT_AUTH_METHOD = "private_key_jwt"
    MAX_LIFETIME = 300

    def __init__(self, token_url: str) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self._token_url = token_url

    def get_audiences(self) -> list[str]:
        return [self._token_url]

    #: SMART Backend Services: servers support RS384 and ES384 (RS256 and ES256 too).
    ALGORITHMS = ["RS384", "ES384", "RS256", "ES256"]

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=self.ALGORITHMS)
        except JoseError as error:
            raise InvalidClientError(description=error.description) from error
        self.verify_claims(token.claims)
        return token.claims

    def verify_claims(self, claims: Any) -> None:
        exp = claims.get("exp")
        if isinstance(exp, int | float) and exp > time.time() + self.MAX_LIFETIME + self.leeway:
            raise InvalidClientError(description="The assertion expires more than five minutes ahead.")
        super().verify_claims(claims)

    def validate_jti(self, claims: Any, jti: str) -> bool:
        client = SoftwareClient.objects.get(client_id=claims["sub"])
        now = timezone.now()
        expires = datetime.datetime.fromtimestamp(float(claims["exp"]) + self.leeway, tz=datetime.UTC)
        try:
            with transaction.atomic():
                AssertionJti.objects.filter(client=client, expires_at__lt=now).delete()
                AssertionJti.objects.create(client=client, jti=str(jti)[:200], expires_at=expires)
        except IntegrityError:
            return False
        return True

    def resolve_client_public_key(self, client: SoftwareClient) -> KeySet:
        if client.jwks:
            return KeySet.import_key_set(client.jwks)
        if client.jwks_uri:
            return KeySet.import_key_set(_fetch_jwks(client.jwks_uri))  # type: ignore[arg-type]
        raise InvalidClientError(description="No public key is registered for this client.")


def _fetch_jwks(url: str) -> dict[str, Any]:
    """The JWKS at ``url`` (https only outside the demo), cached five minutes."""
    key = f"fhir-jwks:{token_digest(url)}"
    cached = cache.get(key)
    if cached is not None:
        return dict(cached)
    if not url.startswith("https://") and not settings.DEBUG and not settings.DEMO_MODE:
        raise InvalidClientError(description="The JWKS URL must use https.")
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310  (scheme checked above)
            jwks = json.loads(response.read(100_000))
    except (OSError, ValueError) as error:
        raise InvalidClientError(description="The client's JWKS cannot be fetched.") from error
    cache.set(key, jwks, 300)
    return dict(jwks)


def _assertion_auth(query_client: Any, request: Any) -> Any:
    django_request = request._request
    from django.urls import reverse

    public = str(getattr(settings, "ESANTE_PUBLIC_URL", "") or "").rstrip("/")
    path = reverse("fhir:token")
    token_url = f"{public}{path}" if public else django_request.build_absolute_uri(path)
    return PrivateKeyJwtAssertion(token_url)(query_client, request)


class Revocation(RevocationEndpoint):
    """RFC 7009: the client revokes one of its tokens (access or refresh)."""

    CLIENT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        digest = token_digest(token_string)
        if token_type_hint == "refresh_token":  # noqa: S105  (a hint's name, not a secret)
            return Token.objects.filter(refresh_digest=digest).first()
        return (
            Token.objects.filter(access_digest=digest).first()
            or Token.objects.filter(refresh_digest=digest).first()
        )

    def revoke_token(self, token: Token, request: Any) -> None:
        Token.objects.filter(pk=token.pk).update(access_revoked=True, refresh_revoked=True)
        audit_record(
            action=AuditAction.API_REVOKE,
            actor=token.user,
            object_type="SoftwareClient",
            object_id=token.client.client_id,
            client_address=_address(request),
            details={"client": token.client.client_id, "by": "client"},
        )


class DigestBearerTokenValidator(BearerTokenValidator):
    """Bearer tokens looked up by digest."""

    def authenticate_token(self, token_string: str) -> Token | None:
        # The professional the token acts for too (``auth.caller`` checks them on every request).
        return (
            Token.objects.select_related("client", "authorisation", "user", "user__professional")
            .filter(access_digest=token_digest(token_string))
            .first()
        )


def token_refused(request: Any, *, reason: str, client_id: str = "") -> None:
    """Traces a refused token request (unknown client, bad assertion, bad code, ...)."""
    audit_record(
        action=AuditAction.API_TOKEN,
        outcome=AuditOutcome.REFUSED,
        object_type="SoftwareClient",
        object_id=client_id[:64],
        client_address=client_address(request),
        details={"client": client_id[:64], "reason": reason[:100]},
    )


server = EsanteAuthorizationServer(SoftwareClient, Token)
server.register_grant(AuthorizationCodeGrant, [S256Only(required=True)])
server.register_grant(RefreshTokenGrant)
server.register_grant(ClientCredentialsGrant)
server.register_client_auth_method("private_key_jwt", _assertion_auth)
server.register_endpoint(Revocation)

require_oauth = ResourceProtector()
require_oauth.register_token_validator(DigestBearerTokenValidator(Token))
