"""Writes of the fhir app: registering software clients, revoking an authorisation."""

import secrets

from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from esante.audit.catalogue import AuditAction
from esante.audit.services import audit_record

from .models import SoftwareAuthorisation, SoftwareClient, Token
from .scopes import SUPPORTED_SCOPES


def _check_scopes(kind: str, scopes: list[str]) -> None:
    unknown = [s for s in scopes if s not in SUPPORTED_SCOPES]
    if unknown:
        raise ValidationError(f"Scopes inconnus : {', '.join(unknown)}.")
    contexts = ("user/", "patient/") if kind == SoftwareClient.Kind.INTERACTIVE else ("system/",)
    wrong = [s for s in scopes if not s.startswith(contexts)]
    if wrong:
        raise ValidationError(f"Scopes incompatibles avec ce type de client : {', '.join(wrong)}.")
    if not scopes:
        raise ValidationError("Au moins un scope est requis.")


@transaction.atomic
def software_client_register(
    *,
    name: str,
    organisation: str,
    kind: str,
    scopes: list[str],
    redirect_uris: list[str] | None = None,
    jwks: dict | None = None,
    jwks_uri: str = "",
    public: bool = False,
    actor_label: str = "operator",
) -> tuple[SoftwareClient, str]:
    """Registers a software client and returns it with its secret in clear (shown once; empty
    when the client has none). Interactive clients need redirect URIs (public: PKCE only, else a
    secret); backend clients a JWKS (inline or URL) for ``private_key_jwt``, or else a secret
    (IHE IUA). Raises ``ValidationError`` in French."""
    if kind not in SoftwareClient.Kind.values:
        raise ValidationError("Type de client inconnu (interactive ou backend).")
    _check_scopes(kind, scopes)
    redirect_uris = redirect_uris or []
    if kind == SoftwareClient.Kind.INTERACTIVE:
        if not redirect_uris:
            raise ValidationError("Un logiciel interactif a besoin d'au moins une adresse de retour.")
        if jwks or jwks_uri:
            raise ValidationError(
                "Un logiciel interactif s'authentifie par PKCE ou par secret, pas par JWKS."
            )
        for uri in redirect_uris:
            if not uri.startswith(("https://", "http://127.0.0.1", "http://localhost")):
                raise ValidationError(f"Adresse de retour refusée (https requis) : {uri}")
        method = SoftwareClient.AuthMethod.NONE if public else SoftwareClient.AuthMethod.SECRET
    else:
        if redirect_uris:
            raise ValidationError("Un service sans utilisateur n'a pas d'adresse de retour.")
        if jwks is not None:
            try:
                keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError, KeyError) as error:
                raise ValidationError("JWKS invalide.") from error
            if any(key.is_private for key in keys.keys):
                raise ValidationError("Le JWKS ne doit contenir que des clés publiques.")
        method = (
            SoftwareClient.AuthMethod.PRIVATE_KEY_JWT
            if (jwks or jwks_uri)
            else SoftwareClient.AuthMethod.SECRET
        )
    secret = secrets.token_urlsafe(32) if method == SoftwareClient.AuthMethod.SECRET else ""
    client = SoftwareClient.objects.create(
        client_id=secrets.token_urlsafe(18),
        name=name,
        organisation=organisation,
        kind=kind,
        auth_method=method,
        secret_hash=make_password(secret) if secret else "",
        redirect_uris="\n".join(redirect_uris),
        jwks=jwks,
        jwks_uri=jwks_uri,
        scopes=" ".join(scopes),
    )
    audit_record(
        action=AuditAction.API_CLIENT_REGISTER,
        actor_label=actor_label,
        object_type="SoftwareClient",
        object_id=client.client_id,
        details={
            "name": name,
            "organisation": organisation,
            "kind": kind,
            "auth_method": method,
            "scopes": scopes,
        },
    )
    return client, secret


@transaction.atomic
def software_authorisation_revoke(
    *, authorisation: SoftwareAuthorisation, user: object, client_address: str | None = None
) -> SoftwareAuthorisation:
    """The professional withdraws a software's authorisation ("Logiciels autorisés"): every
    token issued under it stops working at once. Idempotent."""
    authorisation = (
        SoftwareAuthorisation.objects.select_for_update().select_related("client").get(pk=authorisation.pk)
    )
    if authorisation.revoked_at is None:
        authorisation.revoked_at = timezone.now()
        authorisation.save(update_fields=["revoked_at"])
        Token.objects.filter(authorisation=authorisation).update(access_revoked=True, refresh_revoked=True)
        audit_record(
            action=AuditAction.API_REVOKE,
            actor=user,
            object_type="SoftwareClient",
            object_id=authorisation.client.client_id,
            client_address=client_address,
            details={"client": authorisation.client.client_id, "by": "professional"},
        )
    return authorisation
