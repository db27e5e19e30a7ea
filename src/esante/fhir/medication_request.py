"""Prescription lines <-> FHIR ``MedicationRequest``: one per prescribed medication, with what
remains to be delivered. The search parameters too. No rules here (the dispensing app owns the
quantities; the access gate decides which prescriptions the caller sees)."""

import datetime
from typing import Any

from django.db.models import F, Q, QuerySet
from django.http import QueryDict

from esante.dispensing.rules import prescription_valid_until
from esante.documents.models import PrescriptionLine

from .outcome import invalid

MEDICINE_SYSTEM = "urn:oid:1.3.182.5.47"
REMAINING_EXTENSION = "urn:esante:fhir:StructureDefinition:remaining-quantity"
SEARCH_PARAMETERS = {"patient", "status", "authoredon", "_count", "_page", "_format"}
_PREFIXES = {"eq": "", "ge": "__gte", "gt": "__gt", "le": "__lte", "lt": "__lt"}


def request_id(line: PrescriptionLine) -> str:
    """``<document id>-<line position>``: stable, and a valid FHIR id (at most 64 characters)."""
    return f"{line.prescription.document.public_id}-{line.position}"


def to_resource(line: PrescriptionLine) -> dict[str, Any]:
    """The MedicationRequest of one prescription line (``delivered_so_far`` annotated)."""
    prescription = line.prescription
    document = prescription.document
    delivered = int(getattr(line, "delivered_so_far", 0))
    remaining = max(line.quantity - delivered, 0)
    quantity: dict[str, Any] = {"value": line.quantity}
    left: dict[str, Any] = {"value": remaining}
    if line.unit:
        quantity["unit"] = left["unit"] = line.unit
    coding = [{"system": MEDICINE_SYSTEM, "code": line.medication_code}] if line.medication_code else []
    return {
        "resourceType": "MedicationRequest",
        "id": request_id(line),
        # The prescription's state version: send it back as ``If-Match: W/"n"`` when dispensing.
        "meta": {"versionId": str(prescription.state_version)},
        "extension": [{"url": REMAINING_EXTENSION, "valueQuantity": left}],
        "groupIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{document.public_id}"},
        "status": "completed" if remaining == 0 else "active",
        "intent": "order",
        "medicationCodeableConcept": {"coding": coding, "text": line.medication}
        if coding
        else {"text": line.medication},
        "subject": {"reference": f"Patient/{document.patient.public_id}"},
        "authoredOn": prescription.prescribed_at.isoformat(),
        "requester": {"display": prescription.prescriber_name},
        "supportingInformation": [{"reference": f"DocumentReference/{document.public_id}"}],
        **({"dosageInstruction": [{"text": line.dosage}]} if line.dosage else {}),
        "dispenseRequest": {
            "validityPeriod": {
                "start": prescription.prescribed_at.isoformat(),
                "end": prescription_valid_until(prescription.prescribed_at).isoformat(),
            },
            "quantity": quantity,
        },
    }


def search(
    lines: QuerySet[PrescriptionLine], params: QueryDict
) -> tuple[QuerySet[PrescriptionLine], dict[str, str]]:
    """The lines matching ``status`` (active / completed) and ``authoredon`` (prefixed dates)."""
    for name in params:
        if name not in SEARCH_PARAMETERS:
            raise invalid("unknown-parameter", f"Paramètre de recherche non pris en charge : {name}.")
    traced: dict[str, str] = {}
    if statuses := {s for value in params.getlist("status") for s in value.split(",")}:
        if statuses - {"active", "completed"}:
            raise invalid("invalid-status", "Le statut doit être active ou completed.")
        condition = Q()
        if "active" in statuses:
            condition |= Q(delivered_so_far__lt=F("quantity"))
        if "completed" in statuses:
            condition |= Q(delivered_so_far__gte=F("quantity"))
        lines = lines.filter(condition)
        traced["status"] = ",".join(sorted(statuses))
    for value in params.getlist("authoredon"):
        prefix = value[:2] if value[:2] in _PREFIXES else "eq"
        text = value[2:] if value[:2] in _PREFIXES else value
        try:
            day = datetime.date.fromisoformat(text)
        except ValueError:
            raise invalid(
                "invalid-date", "La date doit être au format AAAA-MM-JJ (préfixes ge, gt, le, lt, eq)."
            ) from None
        lines = lines.filter(**{f"prescription__prescribed_at__date{_PREFIXES[prefix]}": day})
        traced["authoredon"] = f"{traced.get('authoredon', '')} {value}".strip()
    return lines, traced
