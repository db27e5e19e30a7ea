"""The demo's professionals: three already active (credentials printed at start) and one left
``registered`` with a fresh activation code, so a newcomer can walk the activation; and, with
``demo_certificates_load``, a PKCS#12 certificate for each from the demo's local CA (bound to the
active ones, to be bound by the other at activation step 1).

Idempotent: existing professionals are kept; only the registered one gets a new letter (which
revokes the previous one) at each start while it is still not activated.
"""

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_email.models import EmailDevice

from esante.audit.catalogue import AuditAction
from esante.audit.services import audit_record
from esante.patients.matricule import make_patient_matricule

from . import certificates
from .local_pki import P12_PASSWORD, LocalPki
from .models import Certificate, Profession, Professional
from .services import activation_letter_issue, professional_register

DEMO_PASSWORD = "Demo-eSante-2020!"  # noqa: S105 - printed demo credential, demo database only

_ACTIVE = [
    (
        make_patient_matricule(datetime.date(1978, 4, 12), 101),
        Profession.PHARMACIST,
        "Kremer",
        "Claudine",
        "claudine.kremer@pharmacie-demo.lu",
        "Pharmacie du Globe",
    ),
    (
        make_patient_matricule(datetime.date(1983, 9, 30), 102),
        Profession.PHARMACIST,
        "Da Silva",
        "João",
        "joao.dasilva@pharmacie-demo.lu",
        "Pharmacie de la Gare",
    ),
    (
        make_patient_matricule(datetime.date(1969, 1, 23), 103),
        Profession.DOCTOR,
        "Weber",
        "Marc",
        "marc.weber@cabinet-demo.lu",
        "Cabinet médical Weber",
    ),
]
_TO_ACTIVATE = (
    make_patient_matricule(datetime.date(1990, 6, 5), 104),
    Profession.PHARMACIST,
    "Hoffmann",
    "Léa",
    "lea.hoffmann@pharmacie-demo.lu",
    "Pharmacie du Globe",
)


@dataclass
class DemoProfessional:
    matricule: str
    name: str
    profession: str
    email: str
    state: str
    password: str = ""
    activation_code: str = ""


def _register(
    matricule: str, profession: str, last: str, first: str, email: str, organisation: str
) -> Professional:
    existing = Professional.objects.filter(matricule=matricule).first()
    if existing is not None:
        return existing
    return professional_register(
        matricule=matricule,
        profession=profession,
        last_name=last,
        first_name=first,
        email=email,
        mobile="+352621000000",
        organisation=organisation,
        actor_label="system:demo",
    )


@transaction.atomic
def _demo_activate(professional: Professional) -> None:
    """Activates a demo professional directly: demo password and an e-mail code device."""
    user = professional.user
    user.set_password(DEMO_PASSWORD)
    user.is_active = True
    user.save()
    EmailDevice.objects.get_or_create(
        user=user, defaults={"name": "E-mail", "email": professional.email, "confirmed": True}
    )
    professional.state = Professional.State.ACTIVE
    professional.save(update_fields=["state"])
    audit_record(
        action=AuditAction.DEMO_ACTIVATE,
        actor_label="system:demo",
        object_type="professional",
        object_id=professional.pk,
    )


def demo_professionals_load() -> list[DemoProfessional]:
    """Registers the demo professionals; returns what the demo prints about each."""
    shown: list[DemoProfessional] = []
    for row in _ACTIVE:
        professional = _register(*row)
        if professional.state == Professional.State.REGISTERED:
            _demo_activate(professional)
        shown.append(
            DemoProfessional(
                matricule=professional.matricule,
                name=f"{professional.first_name} {professional.last_name}",
                profession=professional.get_profession_display(),
                email=professional.email,
                state=professional.state,
                password=DEMO_PASSWORD,
            )
        )
    professional = _register(*_TO_ACTIVATE)
    code = ""
    if professional.state == Professional.State.REGISTERED:
        _, code = activation_letter_issue(professional=professional, actor_label="system:demo")
    shown.append(
        DemoProfessional(
            matricule=professional.matricule,
            name=f"{professional.first_name} {professional.last_name}",
            profession=professional.get_profession_display(),
            email=professional.email,
            state=professional.state,
            activation_code=code,
        )
    )
    return shown


@dataclass
class DemoCertificate:
    name: str
    matricule: str
    p12_path: Path
    bound: bool


@transaction.atomic
def _demo_bind(professional: Professional, cert: x509.Certificate, ca: x509.Certificate) -> None:
    pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    verified = certificates.certificate_verify(pem, trusted=[ca], crls=[])
    if Certificate.objects.filter(fingerprint_sha256=verified.fingerprint_sha256).exists():
        return
    Certificate.objects.create(
        professional=professional,
        subject=verified.subject,
        issuer=verified.issuer,
        serial=verified.serial,
        fingerprint_sha256=verified.fingerprint_sha256,
        not_before=verified.not_before,
        not_after=verified.not_after,
        bound_at=timezone.now(),
    )
    audit_record(
        action=AuditAction.DEMO_CERTIFICATE,
        actor_label="system:demo",
        object_type="professional",
        object_id=professional.pk,
        details={"fingerprint": verified.fingerprint_sha256},
    )


def demo_certificates_load(directory: Path) -> tuple[list[DemoCertificate], str]:
    """Writes (or reuses) a PKCS#12 file per demo professional from the local CA in ``directory``;
    binds the certificates of active professionals. Returns the files and their password."""
    pki = LocalPki(directory)
    shown: list[DemoCertificate] = []
    matricules = [row[0] for row in _ACTIVE] + [_TO_ACTIVATE[0]]
    for professional in Professional.objects.filter(matricule__in=matricules).order_by("pk"):
        path, cert = pki.professional_p12(
            matricule=professional.matricule,
            last_name=professional.last_name,
            first_name=professional.first_name,
        )
        active = professional.state == Professional.State.ACTIVE
        if active:
            _demo_bind(professional, cert, pki.ca.cert)
        shown.append(
            DemoCertificate(
                name=f"{professional.first_name} {professional.last_name}",
                matricule=professional.matricule,
                p12_path=path,
                bound=active,
            )
        )
    return shown, P12_PASSWORD
