"""Verification of professionals' X.509 client certificates (LuxTrust products).

``certificate_verify`` checks, in this order: the certificate parses; it is not self-signed; it
chains, by signature, to a certificate authority of the trusted bundle (``ESANTE_TRUSTED_CA``),
every certificate of the chain being within its validity period and every issuer being a CA; the
leaf allows client authentication (extended key usage ``clientAuth``, and ``digitalSignature``
when a key usage extension is present); and no certificate of the chain is revoked by a
configured CRL (``ESANTE_CRL``) — a CRL is believed only when its signature verifies against
its issuer. Each refusal raises ``CertificateRefused`` with a French message for the screen and a
short ``reason`` for the audit trail.

``certificate_holder_matches`` compares the holder's names (and the matricule, when the
certificate carries one in ``serialNumber``) with the national register.
"""

import datetime
import unicodedata
import urllib.parse
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_noop

_SHORT_NAMES = {NameOID.SURNAME: "SN", NameOID.GIVEN_NAME: "GN", NameOID.SERIAL_NUMBER: "serialNumber"}


class CertificateRefused(Exception):
    """A refused certificate. ``message`` is French (stored and traced as is, marked with
    ``gettext_noop``): pass it through ``gettext`` to show it in the request's language."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


@dataclass(frozen=True)
class VerifiedCertificate:
    pem: str
    subject: str
    issuer: str
    serial: str
    fingerprint_sha256: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    surname: str
    given_name: str
    common_name: str
    serial_number_attribute: str


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else ""


def certificate_load(data: str | bytes) -> x509.Certificate:
    """Parses PEM (also URL-escaped, as nginx's ``$ssl_client_escaped_cert``) or DER."""
    if isinstance(data, str):
        text = urllib.parse.unquote(data) if "%" in data else data
        data = text.encode("ascii", errors="replace")
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise CertificateRefused(gettext_noop("Le certificat présenté est illisible."), "unreadable") from exc


def _load_bundle(path: str) -> list[x509.Certificate]:
    if not path:
        return []
    return x509.load_pem_x509_certificates(Path(path).read_bytes())


def _load_crl(path: str) -> x509.CertificateRevocationList:
    data = Path(path).read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def _stamp(path: str) -> float:
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return -1.0


@lru_cache(maxsize=8)
def _configured(
    ca_paths: tuple[str, ...], crl_paths: tuple[str, ...], stamps: tuple[float, ...]
) -> tuple[list[x509.Certificate], list[x509.CertificateRevocationList]]:
    del stamps  # part of the cache key only: a rewritten file is read again
    cas = [ca for path in ca_paths for ca in _load_bundle(path)]
    return cas, [_load_crl(p) for p in crl_paths if p]


def trust_configured() -> tuple[list[x509.Certificate], list[x509.CertificateRevocationList]]:
    """The trusted CAs and CRLs named by settings, read again when a file changes.

    ``ESANTE_TRUSTED_CA`` must exist when set; the demo's local CA (``ESANTE_LOCAL_CA``) is added
    once the demo has generated it.
    """
    ca_paths = tuple(
        path
        for path in (settings.ESANTE_TRUSTED_CA, settings.ESANTE_LOCAL_CA)
        if path and (path == settings.ESANTE_TRUSTED_CA or Path(path).exists())
    )
    crl_paths = tuple(p for p in settings.ESANTE_CRL if p)
    return _configured(ca_paths, crl_paths, tuple(_stamp(p) for p in ca_paths + crl_paths))


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return constraints.ca


def _check_period(cert: x509.Certificate, at: datetime.datetime, *, leaf: bool) -> None:
    if at < cert.not_valid_before_utc:
        message = (
            gettext_noop("Votre certificat n'est pas encore valide.")
            if leaf
            else gettext_noop("Le certificat de l'autorité émettrice n'est pas encore valide.")
        )
        raise CertificateRefused(message, "not_yet_valid")
    if at > cert.not_valid_after_utc:
        message = (
            gettext_noop("Votre certificat a expiré.")
            if leaf
            else gettext_noop("Le certificat de l'autorité émettrice a expiré.")
        )
        raise CertificateRefused(message, "expired")


def _check_client_usage(cert: x509.Certificate) -> None:
    refused = CertificateRefused(
        gettext_noop(
            "Ce certificat ne permet pas l'authentification d'une personne (usage « clientAuth » absent)."
        ),
        "key_usage",
    )
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise refused from None
    if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise refused
    try:
        key_usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not key_usage.digital_signature:
        raise refused


def _check_revocation(
    chain: list[x509.Certificate], crls: list[x509.CertificateRevocationList], at: datetime.datetime
) -> None:
    for cert, issuer in zip(chain, chain[1:], strict=False):
        for crl in crls:
            if crl.issuer != issuer.subject or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                continue
            revoked = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if revoked is not None and revoked.revocation_date_utc <= at:
                raise CertificateRefused(gettext_noop("Ce certificat a été révoqué."), "revoked")


def certificate_verify(
    data: str | bytes,
    *,
    trusted: list[x509.Certificate] | None = None,
    crls: list[x509.CertificateRevocationList] | None = None,
    at: datetime.datetime | None = None,
) -> VerifiedCertificate:
    """Verifies a client certificate; returns what the platform records of it.

    ``trusted`` and ``crls`` default to the configured ones. Raises ``CertificateRefused``.
    """
    if trusted is None or crls is None:
        configured_cas, configured_crls = trust_configured()
        trusted = configured_cas if trusted is None else trusted
        crls = configured_crls if crls is None else crls
    at = at or timezone.now()
    leaf = certificate_load(data)
    if not trusted:
        raise CertificateRefused(
            gettext_noop("La connexion par certificat n'est pas configurée sur cette plateforme."),
            "no_trust_anchor",
        )
    trusted_fingerprints = {ca.fingerprint(hashes.SHA256()) for ca in trusted}
    if leaf.issuer == leaf.subject and _signed_by(leaf, leaf):
        raise CertificateRefused(
            gettext_noop("Les certificats auto-signés ne sont pas acceptés."), "self_signed"
        )

    chain = [leaf]
    current = leaf
    for _ in range(8):  # no legitimate chain is deeper
        issuer = next(
            (ca for ca in trusted if ca.subject == current.issuer and _signed_by(current, ca)), None
        )
        if issuer is None or not _is_ca(issuer):
            raise CertificateRefused(
                gettext_noop(
                    "Ce certificat n'a pas été émis par une autorité de certification reconnue (LuxTrust)."
                ),
                "untrusted_issuer",
            )
        chain.append(issuer)
        if issuer.subject == issuer.issuer and issuer.fingerprint(hashes.SHA256()) in trusted_fingerprints:
            break
        current = issuer
    else:
        raise CertificateRefused(
            gettext_noop("La chaîne de certification est trop longue."), "chain_too_long"
        )

    for index, cert in enumerate(chain):
        _check_period(cert, at, leaf=index == 0)
    _check_client_usage(leaf)
    _check_revocation(chain, crls, at)

    return VerifiedCertificate(
        pem=leaf.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        subject=leaf.subject.rfc4514_string(_SHORT_NAMES),
        issuer=leaf.issuer.rfc4514_string(_SHORT_NAMES),
        serial=format(leaf.serial_number, "x"),
        fingerprint_sha256=leaf.fingerprint(hashes.SHA256()).hex(),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        surname=_attr(leaf.subject, NameOID.SURNAME),
        given_name=_attr(leaf.subject, NameOID.GIVEN_NAME),
        common_name=_attr(leaf.subject, NameOID.COMMON_NAME),
        serial_number_attribute=_attr(leaf.subject, NameOID.SERIAL_NUMBER),
    )


def _fold(text: str) -> str:
    """Case, accents, hyphens and extra spaces do not matter when comparing names."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(plain.replace("-", " ").replace("'", " ").casefold().split())


def certificate_holder_matches(
    cert: VerifiedCertificate, *, last_name: str, first_name: str, matricule: str
) -> bool:
    """True when the certificate names the registered professional.

    Surname and given names must be equal (case, accents and hyphens aside); when the subject has
    no surname/given-name attributes, the common name must read "given names surname" or
    "surname given names". A digit string in ``serialNumber`` must contain the matricule.
    """
    last, first = _fold(last_name), _fold(first_name)
    if cert.surname or cert.given_name:
        names_match = _fold(cert.surname) == last and _fold(cert.given_name) == first
    else:
        common = _fold(cert.common_name)
        names_match = common in (f"{first} {last}", f"{last} {first}")
    digits = "".join(ch for ch in cert.serial_number_attribute if ch.isdigit())
    matricule_match = not digits or len(digits) < 11 or matricule in digits
    return names_match and matricule_match
