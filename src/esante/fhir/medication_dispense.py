"""FHIR ``MedicationDispense`` <-> a dispensation of one prescription line. No rules here: the
dispensing service decides (quantities owed, validity, concurrency, stale versions)."""

import re
import uuid
from dataclasses import dataclass
from typing import Any

from esante.dispensing.models import Dispensation
from esante.documents.models import PrescriptionLine

from . import binary
from .medication_request import MEDICINE_SYSTEM, request_id
from .outcome import invalid

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
    #: The national medicine codes ``medicationCodeableConcept`` names: each must be the line's
    #: (codes of other systems are the software's own words for it, not checked here).
    medicine_codes: tuple[str, ...] = ()


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
    medication = body.get("medicationCodeableConcept")
    codings = medication.get("coding") if isinstance(medication, dict) else []
    codes = tuple(
        str(coding.get("code", ""))
        for coding in (codings if isinstance(codings, list) else [])
        if isinstance(coding, dict) and coding.get("system") == MEDICINE_SYSTEM
    )
    return DispenseRequest(
        uuid.UUID(match["document"]),
        int(match["position"]),
        value,
        subject=reference.rstrip("/").rsplit("/", 1)[-1] if reference else "",
        medicine_codes=codes,
    )


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
