"""Verification of LuxTrust client certificates against a throw-away CA."""

import datetime

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from esante.accounts.certificates import CertificateRefused, certificate_holder_matches, certificate_verify

from .conftest import DAY, NOW, Pki, make_ca, pem


def test_valid_certificate_is_accepted(pki: Pki) -> None:
    cert = pki.issue(surname="Müller", given_name="Anne-Marie", serial_attr="19750315006")
    verified = certificate_verify(pem(cert))
    assert verified.surname == "Müller" and verified.given_name == "Anne-Marie"
    assert verified.serial == format(cert.serial_number, "x")
    assert len(verified.fingerprint_sha256) == 64
    assert verified.issuer == "CN=Test LuxTrust Global Qualified CA,C=LU"


@pytest.mark.parametrize(
    ("kwargs", "reason", "message"),
    [
        ({"not_before": NOW - 400 * DAY, "not_after": NOW - DAY}, "expired", "Votre certificat a expiré."),
        ({"not_before": NOW + DAY, "not_after": NOW + 400 * DAY}, "not_yet_valid", "pas encore valide"),
        ({"eku": [ExtendedKeyUsageOID.SERVER_AUTH]}, "key_usage", "clientAuth"),
        (
            {"eku": [ExtendedKeyUsageOID.EMAIL_PROTECTION, ExtendedKeyUsageOID.CODE_SIGNING]},
            "key_usage",
            "clientAuth",
        ),
        ({"self_signed": True}, "self_signed", "auto-signés"),
    ],
)
def test_invalid_certificates_are_refused(pki: Pki, kwargs: dict, reason: str, message: str) -> None:
    with pytest.raises(CertificateRefused) as refused:
        certificate_verify(pem(pki.issue(**kwargs)))
    assert refused.value.reason == reason
    assert message in refused.value.message


def test_certificate_of_another_ca_is_refused(pki: Pki) -> None:
    other = make_ca("Test LuxTrust Global Qualified CA")  # same name, other key
    with pytest.raises(CertificateRefused) as refused:
        certificate_verify(pem(pki.issue(ca=other)))
    assert refused.value.reason == "untrusted_issuer"
    assert "autorité de certification reconnue" in refused.value.message


def test_revoked_certificate_is_refused(pki: Pki) -> None:
    cert = pki.issue()
    certificate_verify(pem(cert))
    pki.revoke(cert)
    with pytest.raises(CertificateRefused, match="révoqué"):
        certificate_verify(pem(cert))


def test_crl_signed_by_someone_else_is_ignored(pki: Pki) -> None:
    cert = pki.issue()
    pki.revoke(cert)
    impostor = make_ca("Impostor")
    from esante.accounts.certificates import trust_configured

    _, crls = trust_configured()
    assert crls[0].is_signature_valid(pki.ca.key.public_key())
    assert not crls[0].is_signature_valid(impostor.key.public_key())


def test_unreadable_and_unconfigured(pki: Pki, settings: object) -> None:
    with pytest.raises(CertificateRefused, match="illisible"):
        certificate_verify("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    with pytest.raises(CertificateRefused) as refused:
        certificate_verify(pem(pki.issue()), trusted=[], crls=[])
    assert refused.value.reason == "no_trust_anchor"


def test_expired_ca_makes_the_chain_invalid(pki: Pki) -> None:
    cert = pki.issue()
    later = datetime.datetime.now(datetime.UTC) + 3700 * DAY
    with pytest.raises(CertificateRefused) as refused:
        certificate_verify(pem(cert), at=later)
    assert refused.value.reason == "expired"


def test_holder_must_match_the_register(pki: Pki) -> None:
    verified = certificate_verify(pem(pki.issue(surname="MÜLLER", given_name="anne-marie")))
    assert certificate_holder_matches(
        verified, last_name="Muller", first_name="Anne Marie", matricule="19750315006"
    )
    assert not certificate_holder_matches(
        verified, last_name="Muller", first_name="Anne", matricule="19750315006"
    )
    with_matricule = certificate_verify(pem(pki.issue(serial_attr="PNOLU-19750315006")))
    assert certificate_holder_matches(
        with_matricule, last_name="Muller", first_name="Anne", matricule="19750315006"
    )
    assert not certificate_holder_matches(
        with_matricule, last_name="Muller", first_name="Anne", matricule="19800101002"
    )
