"""The usual cast of the accounts tests, and a throw-away certificate authority.

``pki`` builds a LuxTrust-like CA with ``cryptography``, points ``ESANTE_TRUSTED_CA`` and
``ESANTE_CRL`` at it, and issues client certificates on demand.
"""

import datetime
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.test import Client

from esante.accounts import certificates
from esante.accounts.models import Professional
from esante.accounts.services import activation_letter_issue, professional_register

PROXY = "10.0.0.2"
ORIGIN = "https://certificat.example.lu"
ORIGIN_PATH = "/professionnel/certificat/tls/"
PASSWORD = "Tisane-de-camomille-42"
NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)


def _name(cn: str, **extra: str) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "LU"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if "surname" in extra:
        attributes.append(x509.NameAttribute(NameOID.SURNAME, extra["surname"]))
    if "given_name" in extra:
        attributes.append(x509.NameAttribute(NameOID.GIVEN_NAME, extra["given_name"]))
    if "serial" in extra:
        attributes.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, extra["serial"]))
    return x509.Name(attributes)


@dataclass
class Authority:
    name: x509.Name
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def make_ca(cn: str) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(cn)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - 365 * DAY)
        .not_valid_after(NOW + 3650 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Authority(name, key, cert)


@dataclass
class Pki:
    ca: Authority
    directory: Path
    revoked: list[int] = field(default_factory=list)
    keys: dict[int, ec.EllipticCurvePrivateKey] = field(default_factory=dict)

    def issue(
        self,
        *,
        surname: str = "Muller",
        given_name: str = "Anne",
        serial_attr: str | None = None,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        eku: list[x509.ObjectIdentifier] | None = None,
        ca: Authority | None = None,
        self_signed: bool = False,
    ) -> x509.Certificate:
        key = ec.generate_private_key(ec.SECP256R1())
        extra = {"surname": surname, "given_name": given_name}
        if serial_attr:
            extra["serial"] = serial_attr
        subject = _name(f"{given_name} {surname}", **extra)
        issuer = ca or self.ca
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject if self_signed else issuer.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or NOW - DAY)
            .not_valid_after(not_after or NOW + 365 * DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(eku if eku is not None else [ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
        )
        cert = builder.sign(key if self_signed else issuer.key, hashes.SHA256())
        self.keys[cert.serial_number] = key
        return cert

    def revoke(self, cert: x509.Certificate) -> None:
        self.revoked.append(cert.serial_number)
        self.write_crl()

    def write_crl(self) -> None:
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.ca.name)
            .last_update(NOW - DAY)
            .next_update(NOW + 7 * DAY)
        )
        for serial in self.revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW - DAY).build()
            )
        crl = builder.sign(self.ca.key, hashes.SHA256())
        (self.directory / "ca.crl").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        certificates._configured.cache_clear()


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def forwarded(cert: x509.Certificate) -> dict[str, str]:
    """The headers a trusted nginx sends with a verified client certificate."""
    return {
        "REMOTE_ADDR": PROXY,
        "HTTP_X_SSL_CLIENT_CERT": urllib.parse.quote(pem(cert)),
        "HTTP_X_FORWARDED_FOR": "192.0.2.10",
    }


@pytest.fixture(autouse=True)
def _certificate_origin(settings: Any) -> None:
    settings.ESANTE_CERTIFICATE_ORIGIN = ORIGIN
    settings.ESANTE_LOCAL_CA = ""


def to_origin(client: Client, start_url: str) -> str:
    """ "Connexion" on the portal; returns the path (with the request nonce) on the origin."""
    response = client.post(start_url)
    assert response.status_code == 302, response.content.decode()[-500:]
    assert response["Location"].startswith(f"{ORIGIN}{ORIGIN_PATH}?demande=")
    return response["Location"][len(ORIGIN) :]


def at_origin(origin_path: str, cert: x509.Certificate | None, **headers: str) -> Any:
    """The browser on the certificate origin, as nginx forwards it (its own cookie-less client:
    the origin is another site)."""
    meta = forwarded(cert) if cert is not None else {"REMOTE_ADDR": PROXY}
    return Client().get(origin_path, **(meta | headers))


def present(client: Client, cert: x509.Certificate | None, *, start_url: str, **headers: str) -> Any:
    """The whole round trip portal -> origin -> portal; returns the portal's response."""
    back = at_origin(to_origin(client, start_url), cert, **headers)
    assert back.status_code == 302
    assert back["Location"].startswith("http://testserver/professionnel/certificat/retour/?jeton=")
    return client.get(back["Location"])


@pytest.fixture
def pki(tmp_path: Path, settings: Any) -> Iterator[Pki]:
    ca = make_ca("Test LuxTrust Global Qualified CA")
    (tmp_path / "ca.pem").write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    pki = Pki(ca=ca, directory=tmp_path)
    pki.write_crl()
    settings.ESANTE_TRUSTED_CA = str(tmp_path / "ca.pem")
    settings.ESANTE_CRL = [str(tmp_path / "ca.crl")]
    settings.ESANTE_TRUSTED_PROXIES = [PROXY]
    certificates._configured.cache_clear()
    yield pki
    certificates._configured.cache_clear()


@pytest.fixture(autouse=True)
def _outbox(tmp_path: Path, settings: Any) -> None:
    settings.OUTBOX_DIR = tmp_path / "outbox"
    settings.ESANTE_OUTBOX_ECHO = False


@pytest.fixture
def registered(db: Any) -> tuple[Professional, str]:
    """A pharmacist in state ``registered`` with a fresh activation letter; returns (professional, code)."""
    professional = professional_register(
        matricule="19750315006",
        profession="pharmacist",
        last_name="Muller",
        first_name="Anne",
        email="anne.muller@pharmacie.lu",
        mobile="+352 621 111 222",
        organisation="Pharmacie du Globe",
    )
    _, code = activation_letter_issue(professional=professional)
    return professional, code


@pytest.fixture
def csrf_client() -> Client:
    return Client(enforce_csrf_checks=True)


def make_active(
    *, matricule: str, last_name: str, first_name: str, email: str, channel: str = "email"
) -> Professional:
    """An activated professional: password ``PASSWORD`` and a confirmed code device."""
    from django_otp.plugins.otp_email.models import EmailDevice

    from esante.accounts.models import SmsDevice

    professional = professional_register(
        matricule=matricule,
        profession="pharmacist",
        last_name=last_name,
        first_name=first_name,
        email=email,
        mobile="+352621333444",
    )
    user = professional.user
    user.set_password(PASSWORD)
    user.is_active = True
    user.save()
    professional.state = Professional.State.ACTIVE
    professional.save()
    if channel == "email":
        EmailDevice.objects.create(user=user, name="E-mail", email=email, confirmed=True)
    else:
        SmsDevice.objects.create(user=user, name="SMS", number="+352621333444", confirmed=True)
    return professional


@pytest.fixture
def active(db: Any) -> Professional:
    return make_active(
        matricule="19800101002", last_name="Schmit", first_name="Luc", email="luc.schmit@pharma.lu"
    )
