"""FHIR ``MedicationDispense`` <-> a dispensation of one prescription line. No dispensing rules
here: the dispensing service decides (quantities owed, validity, concurrency, stale versions).

What a create may say beyond the line and the quantity, and what the platform does with it:

- ``performer``: absent, the dispensation is the token's pharmacist's (always). Present, it must
  be that pharmacist, named by matricule (one performer, ``actor.identifier`` with system
  ``PROFESSIONAL_SYSTEM``): another professional is refused (422 ``performer-mismatch``), since
  software cannot record a dispensation in someone else's name.
- ``whenHandedOver``: a date and time with its time zone, neither in the future (beyond
  ``CLOCK_SKEW``) nor before the prescription (else 422); recorded in the dispensation's audit
  event. The dispensation itself is dated when the platform records it (the validity windows
  and the withdrawal window count from then, as on the portal).
- ``medicationCodeableConcept``: its ``text`` is the software's own words; each coding must be
  of the national medicine codes (``MEDICINE_SYSTEM``, else 400 ``unknown-code-system``: a code
  the platform cannot check is not taken on trust) and name the line's medicine.
"""

import datetime
import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.utils.dateparse import parse_datetime

from esante.dispensing.models import Dispensation
from esante.documents.models import PrescriptionLine

from . import binary
from .medication_request import MEDICINE_SYSTEM, request_id
from .outcome import FhirError, invalid

#: The system of a professional's matricule in ``performer.actor.identifier``.
PROFESSIONAL_SYSTEM = "urn:esante:professional"
#: How far in the future ``whenHandedOver`` may be (the software's clock against ours).
CLOCK_SKEW = datetime.timedelta(minutes=2)

_REQUEST = re.compile(r"^(?:.*/)?MedicationRequest/(?P<document>[0-9a-f-]{36})-(?P<position>\d{1,4})$")
_ALLOWED = {
    "resourceType", "status", "authorizingPrescription", "quantity", "subject",
    "medicationCodeableConcept", "whenHandedOver", "performer", "meta", "text",
}  # fmt: skip


@dataclass(frozen=True)
class DispenseRequest:
    document_id: uuid.UUID
    position: int
    quantity: int
    #: The patient ``subject`` names (``""`` when absent): it must be the prescription's.
    subject: str = ""
    #: The national medicine codes ``medicationCodeableConcept`` names: each must be the line's.
    medicine_codes: tuple[str, ...] = ()
    #: The matricule ``performer`` names (None when absent): it must be the token's pharmacist's.
    performer: str | None = None
    #: ``whenHandedOver`` (None when absent).
    handed_over_at: datetime.datetime | None = None


def from_resource(body: dict[str, Any]) -> DispenseRequest:
    """What a MedicationDispense asks: one prescription line (``authorizingPrescription``, a
    MedicationRequest of this server) and the quantity handed over now."""
    if body.get("resourceType") != "MedicationDispense":
        raise invalid("invalid-resource", "Le corps doit être une ressource MedicationDispense.")
    unknown = set(body) - _ALLOWED
    if unknown:
        raise invalid("unsupported-element", f"Éléments non pris en charge : {', '.join(sorted(unknown))}.")
    if body.get("status") != "completed":
        raise invalid("invalid-status", "Une dispensation enregistrée a le statut « completed ».")
    prescriptions = body.get("authorizingPrescription")
    if (
        not isinstance(prescriptions, list)
        or len(prescriptions) != 1
        or not isinstance(prescriptions[0], dict)
    ):
        raise invalid(
            "prescription-required", "authorizingPrescription doit nommer une et une seule MedicationRequest."
        )
    match = _REQUEST.match(str(prescriptions[0].get("reference", "")))
    if match is None:
        raise invalid("invalid-reference", "authorizingPrescription doit référencer MedicationRequest/{id}.")
    quantity = body.get("quantity")
    value = quantity.get("value") if isinstance(quantity, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise invalid("invalid-quantity", "quantity.value doit être un nombre entier positif.")
    subject = body.get("subject")
    if subject is not None and not isinstance(subject, dict):
        raise invalid("invalid-reference", "subject doit référencer Patient/{id}.")
    reference = str((subject or {}).get("reference", ""))
    return DispenseRequest(
        uuid.UUID(match["document"]),
        int(match["position"]),
        value,
        subject=reference.rstrip("/").rsplit("/", 1)[-1] if reference else "",
        medicine_codes=_medicine_codes(body.get("medicationCodeableConcept")),
        performer=_performer(body.get("performer")),
        handed_over_at=_handed_over(body.get("whenHandedOver")),
    )


def _medicine_codes(medication: Any) -> tuple[str, ...]:
    """The national medicine codes of ``medicationCodeableConcept``; 400 for a coding of another
    system (or of none) or without a code."""
    if medication is None:
        return ()
    codings = medication.get("coding", []) if isinstance(medication, dict) else None
    if not isinstance(codings, list) or not all(isinstance(coding, dict) for coding in codings):
        raise invalid("invalid-medication", "medicationCodeableConcept doit être un CodeableConcept.")
    codes = []
    for coding in codings:
        system = coding.get("system")
        if system != MEDICINE_SYSTEM:
            named = system if isinstance(system, str) and system else "aucun"
            raise invalid(
                "unknown-code-system",
                f"Système de codage du médicament non pris en charge : {named[:200]} "
                f"(seul {MEDICINE_SYSTEM} est accepté).",
            )
        code = coding.get("code")
        if not isinstance(code, str) or not code.strip():
            raise invalid("invalid-medication", "Chaque codage du médicament doit avoir un code.")
        codes.append(code)
    return tuple(codes)


def _performer(performer: Any) -> str | None:
    """The matricule ``performer`` names (None when absent); 400 when it names nobody we know
    how to check."""
    if performer is None:
        return None
    entry = performer[0] if isinstance(performer, list) and len(performer) == 1 else None
    actor = entry.get("actor") if isinstance(entry, dict) and set(entry) == {"actor"} else None
    identifier = (
        actor.get("identifier")
        if isinstance(actor, dict) and set(actor) <= {"identifier", "display"}
        else None
    )
    system = identifier.get("system") if isinstance(identifier, dict) else None
    value = identifier.get("value") if isinstance(identifier, dict) else None
    if not isinstance(system, str) or not isinstance(value, str) or not value.strip():
        raise invalid(
            "invalid-performer",
            "performer doit nommer un seul professionnel, par son matricule "
            f"(actor.identifier, système {PROFESSIONAL_SYSTEM}).",
        )
    if system != PROFESSIONAL_SYSTEM:
        raise invalid(
            "unknown-identifier-system",
            f"Système d'identifiant du professionnel non pris en charge : {system[:200]} "
            f"(seul {PROFESSIONAL_SYSTEM} est accepté).",
        )
    return value.strip()


def _handed_over(value: Any) -> datetime.datetime | None:
    """``whenHandedOver`` (None when absent); 400 unless a date and time with its time zone."""
    if value is None:
        return None
    moment = parse_datetime(value) if isinstance(value, str) else None
    if moment is None or moment.tzinfo is None:
        raise invalid(
            "invalid-date", "whenHandedOver doit être une date et heure avec fuseau horaire (ISO 8601)."
        )
    return moment


def business_refusal(
    asked: DispenseRequest, *, matricule: str, prescribed_at: datetime.datetime, now: datetime.datetime
) -> FhirError | None:
    """What the request claims that the platform cannot record (422, to be traced), or None:
    another performer than the token's pharmacist (``matricule``), a hand-over in the future or
    before the prescription."""
    if asked.performer is not None and asked.performer != matricule:
        return FhirError(
            422,
            "performer-mismatch",
            "performer doit être le pharmacien pour lequel agit le jeton : une dispensation ne "
            "s'enregistre pas au nom d'un autre professionnel.",
            issue_type="business-rule",
        )
    if asked.handed_over_at is not None and asked.handed_over_at > now + CLOCK_SKEW:
        return FhirError(
            422,
            "handed-over-in-future",
            "whenHandedOver est dans le futur : une dispensation s'enregistre une fois faite.",
            issue_type="business-rule",
        )
    if asked.handed_over_at is not None and asked.handed_over_at < prescribed_at:
        return FhirError(
            422,
            "handed-over-before-prescription",
            "whenHandedOver précède la date de la prescription.",
            issue_type="business-rule",
        )
    return None


def check_line(asked: DispenseRequest, *, patient_id: str, medication_code: str) -> None:
    """The elements of the request that must agree with the prescription line it names."""
    if asked.subject and asked.subject != patient_id:
        raise invalid("subject-mismatch", "subject ne désigne pas le patient de la prescription.")
    if any(code != medication_code for code in asked.medicine_codes):
        raise invalid(
            "medication-mismatch",
            "medicationCodeableConcept ne désigne pas le médicament de la prescription.",
        )


def withdrawal_reason(public_id: str, body: dict[str, Any]) -> str:
    """The reason of an update to ``entered-in-error`` (the withdrawal of a dispensation recorded
    by mistake): ``statusReasonCodeableConcept.text``. Any other update is refused."""
    if body.get("resourceType") != "MedicationDispense":
        raise invalid("invalid-resource", "Le corps doit être une ressource MedicationDispense.")
    if body.get("id") != public_id:
        raise invalid("id-mismatch", "L'id de la ressource doit être celui de l'adresse.")
    if body.get("status") != "entered-in-error":
        raise invalid(
            "invalid-status",
            "Une dispensation ne se modifie pas : seul son retrait "
            "(statut « entered-in-error ») est possible.",
        )
    reason = body.get("statusReasonCodeableConcept")
    text = reason.get("text") if isinstance(reason, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise invalid(
            "reason-missing", "Le motif du retrait (statusReasonCodeableConcept.text) est obligatoire."
        )
    return text


def to_resource(
    dispensation: Dispensation, line: PrescriptionLine, quantity: int, *, patient_id: str
) -> dict[str, Any]:
    """The recorded dispensation of one line (``entered-in-error`` once withdrawn, with its
    reason), for the patient of public id ``patient_id`` (the gate's, read once a request)."""
    coding = [{"system": MEDICINE_SYSTEM, "code": line.medication_code}] if line.medication_code else []
    return {
        "resourceType": "MedicationDispense",
        "id": str(dispensation.public_id),
        "status": "entered-in-error" if dispensation.is_withdrawn else "completed",
        **(
            {"statusReasonCodeableConcept": {"text": dispensation.withdrawal_reason}}
            if dispensation.is_withdrawn
            else {}
        ),
        "medicationCodeableConcept": {"coding": coding, "text": line.medication}
        if coding
        else {"text": line.medication},
        "subject": {"reference": f"Patient/{patient_id}"},
        "performer": [{"actor": {"display": f"{dispensation.pharmacist_name} ({dispensation.pharmacy})"}}],
        "authorizingPrescription": [{"reference": f"MedicationRequest/{request_id(line)}"}],
        # The certified copy (a Binary: ``binary``), ready once the job has made it.
        "supportingInformation": [binary.reference(dispensation)],
        "quantity": {"value": quantity, **({"unit": line.unit} if line.unit else {})},
        "whenHandedOver": dispensation.dispensed_at.isoformat(),
    }
