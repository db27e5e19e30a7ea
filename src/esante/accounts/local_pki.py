"""The demo's local certificate authority, generated into ``<data dir>/certificats/``.

It stands in for LuxTrust on a developer's machine: it signs the certificate origin's server
certificate (``127.0.0.1``, ``localhost``, ``::1``) and one client certificate per demo
professional, each written as a password-protected PKCS#12 file to import into a browser.
Files are created once and reused at the next start (re-issued when expired), so an imported
certificate keeps working. Trusted only in the demo (``ESANTE_LOCAL_CA``).
"""

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.utils import timezone
from django.utils.text import slugify

CA_NAME = "eSanté démonstration — autorité locale (pas LuxTrust)"
P12_PASSWORD = "demo-luxtrust"  # noqa: S105 - printed demo credential protecting demo keys only
_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _write_private(path: Path, data: bytes) -> None:
    """Writes a file holding a private key, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    tmp.replace(path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _still_valid(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    now = timezone.now()
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):  # issued by an earlier local CA: issue again
        return False
    return cert.not_valid_before_utc <= now < cert.not_valid_after_utc - 7 * _DAY


class LocalPki:
    """The local CA in ``directory`` (created on first use)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca_path = directory / "ca.pem"
        self.ca_key_path = directory / "ca-key.pem"
        self.server_cert_path = directory / "origine.pem"
        self.server_key_path = directory / "origine-key.pem"
        self.ca = self._ca()

    def _ca(self) -> Issued:
        if self.ca_path.exists() and self.ca_key_path.exists():
            cert = x509.load_pem_x509_certificate(self.ca_path.read_bytes())
            key = serialization.load_pem_private_key(self.ca_key_path.read_bytes(), password=None)
            if isinstance(key, ec.EllipticCurvePrivateKey) and cert.not_valid_after_utc > timezone.now():
                return Issued(cert, key)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [x509.NameAttribute(NameOID.COUNTRY_NAME, "LU"), x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)]
        )
        now = timezone.now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + 3650 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_private(self.ca_key_path, _key_pem(key))
        self.ca_path.write_bytes(_cert_pem(cert))
        return Issued(cert, key)

    def _issue(
        self,
        subject: x509.Name,
        *,
        days: int,
        usage: x509.ObjectIdentifier,
        alt_names: list[x509.GeneralName] | None = None,
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = timezone.now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.ca.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + days * _DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca.key.public_key()), critical=False
            )
        )
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        return Issued(builder.sign(self.ca.key, hashes.SHA256()), key)

    def server_certificate(self) -> tuple[Path, Path]:
        """The origin's server certificate and key files (for 127.0.0.1, localhost and ::1)."""
        if self.server_cert_path.exists() and self.server_key_path.exists():
            cert = x509.load_pem_x509_certificate(self.server_cert_path.read_bytes())
            if _still_valid(cert, self.ca.cert):
                return self.server_cert_path, self.server_key_path
        issued = self._issue(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]),
            days=365,
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
            alt_names=[
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1")),
                x509.DNSName("localhost"),
            ],
        )
        _write_private(self.server_key_path, _key_pem(issued.key))
        self.server_cert_path.write_bytes(_cert_pem(issued.cert) + _cert_pem(self.ca.cert))
        return self.server_cert_path, self.server_key_path

    def professional_p12(
        self, *, matricule: str, last_name: str, first_name: str
    ) -> tuple[Path, x509.Certificate]:
        """The professional's PKCS#12 file (password ``P12_PASSWORD``) and its certificate."""
        path = self.directory / f"{slugify(f'{first_name}-{last_name}')}-{matricule}.p12"
        if path.exists():
            loaded = pkcs12.load_pkcs12(path.read_bytes(), P12_PASSWORD.encode())
            if loaded.cert is not None and _still_valid(loaded.cert.certificate, self.ca.cert):
                return path, loaded.cert.certificate
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "LU"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{first_name} {last_name}"),
                x509.NameAttribute(NameOID.SURNAME, last_name),
                x509.NameAttribute(NameOID.GIVEN_NAME, first_name),
                x509.NameAttribute(NameOID.SERIAL_NUMBER, f"PNOLU-{matricule}"),
            ]
        )
        issued = self._issue(subject, days=730, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
        data = pkcs12.serialize_key_and_certificates(
            name=f"{first_name} {last_name} (démonstration eSanté)".encode(),
            key=issued.key,
            cert=issued.cert,
            cas=[self.ca.cert],
            encryption_algorithm=serialization.BestAvailableEncryption(P12_PASSWORD.encode()),
        )
        _write_private(path, data)
        return path, issued.cert
