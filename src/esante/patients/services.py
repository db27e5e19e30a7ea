"""Writes to the patient index."""

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from esante.audit.catalogue import AuditAction
from esante.audit.services import audit_record

from .models import Patient

# Fields an import may change on an existing patient; old and new values go to the audit trail.
IMPORTED_FIELDS = (
    "birth_name",
    "usage_name",
    "first_names",
    "birth_date",
    "sex",
    "taux",
    "dossier_number",
    "platform_identifier",
    "dossier_state",
)


@dataclass
class BatchResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[tuple[int, str, str]] = field(default_factory=list)  # (line, matricule, reason)


def _new_platform_identifiers(count: int) -> list[str]:
    """Random 10-digit platform identifiers starting with 17, none already in use."""
    chosen: set[str] = set()
    while len(chosen) < count:
        wanted = {f"17{secrets.randbelow(10**8):08d}" for _ in range(count - len(chosen))} - chosen
        taken = set(
            Patient.objects.filter(platform_identifier__in=wanted).values_list(
                "platform_identifier", flat=True
            )
        )
        chosen |= wanted - taken
    return sorted(chosen)


@transaction.atomic
def patients_import_batch(
    *, rows: list[tuple[int, dict[str, Any]]], source: str, actor: Any = None, actor_label: str = ""
) -> BatchResult:
    """Creates or updates the patients of one batch of validated rows, idempotent on the matricule.

    A new patient is created; an existing one is updated where a field changed, with one audit
    event per updated patient carrying the old and new values; an unchanged one is left alone.
    A row whose platform identifier belongs to another patient is rejected. The batch's creations
    are traced by one event listing the new matricules. Runs in one transaction.
    """
    result = BatchResult()
    latest: dict[str, tuple[int, dict[str, Any]]] = {}
    for line, values in rows:
        latest[values["matricule"]] = (line, values)  # a matricule repeated in a batch: last line wins
    existing = {p.matricule: p for p in Patient.objects.filter(matricule__in=latest.keys())}
    wanted_ids = {v["platform_identifier"]: m for m, (_, v) in latest.items() if v.get("platform_identifier")}
    owners = dict(
        Patient.objects.filter(platform_identifier__in=wanted_ids.keys()).values_list(
            "platform_identifier", "matricule"
        )
    )
    to_create: list[Patient] = []
    created_lines: list[tuple[int, str]] = []
    updates: list[tuple[int, Patient, dict[str, list[Any]]]] = []
    for matricule, (line, values) in latest.items():
        identifier = values.get("platform_identifier")
        if identifier and owners.get(identifier, matricule) != matricule:
            result.rejected.append(
                (line, matricule, f"identifiant {identifier} déjà attribué à un autre patient")
            )
            continue
        if identifier:
            owners[identifier] = matricule  # claimed by this row for the rest of the batch
        patient = existing.get(matricule)
        if patient is None:
            patient = Patient(**values)
            patient.refresh_folded()
            to_create.append(patient)
            created_lines.append((line, matricule))
            continue
        changes = {
            name: [str(getattr(patient, name)), str(values[name])]
            for name in IMPORTED_FIELDS
            if name in values and getattr(patient, name) != values[name]
        }
        if not changes:
            result.unchanged += 1
            continue
        for name in changes:
            setattr(patient, name, values[name])
        updates.append((line, patient, changes))
    missing_ids = [p for p in to_create if not p.platform_identifier]
    for patient, identifier in zip(missing_ids, _new_platform_identifiers(len(missing_ids)), strict=True):
        patient.platform_identifier = identifier
    Patient.objects.bulk_create(to_create, batch_size=1000)
    for _, patient, _ in updates:
        patient.save()
    result.created, result.updated = len(to_create), len(updates)
    for line, patient, changes in updates:
        audit_record(
            action=AuditAction.PATIENT_UPDATE,
            actor=actor,
            actor_label=actor_label,
            patient=patient,
            details={"source": source, "line": line, "changes": changes},
        )
    if created_lines:
        audit_record(
            action=AuditAction.PATIENT_CREATE,
            actor=actor,
            actor_label=actor_label,
            details={
                "source": source,
                "count": len(created_lines),
                "lines": [created_lines[0][0], created_lines[-1][0]],
                "matricules": [matricule for _, matricule in created_lines],
            },
        )
    return result


def _traced_value(patient: Patient, name: str) -> str | None:
    field = next(f for f in Patient._meta.concrete_fields if f.name == name)
    value = field.value_from_object(patient)  # a foreign key gives its id
    return None if value is None else str(value)


@transaction.atomic
def patient_save_by_operator(
    *, patient: Patient, fields: Iterable[str], actor: Any, client_address: str | None = None
) -> Patient:
    """Saves an operator's creation or edit of a patient (the operators' admin), traced.

    An edit writes ``patient.update`` with the old and new value of every field of ``fields``
    whose value changed; the stored row is locked and read first, so the old values are the
    ones the edit replaces. A creation writes ``patient.create`` with the values given. The
    event is written in the save's transaction, as its last statement.
    """
    names = [name for name in fields if name in {f.name for f in Patient._meta.concrete_fields}]
    if patient.pk is None:
        patient.save()
        audit_record(
            action=AuditAction.PATIENT_CREATE,
            actor=actor,
            patient=patient,
            object_type="patient",
            object_id=patient.pk,
            client_address=client_address,
            details={"source": "admin", "values": {name: _traced_value(patient, name) for name in names}},
        )
        return patient
    stored = Patient.objects.select_for_update().get(pk=patient.pk)
    changes = {
        name: [_traced_value(stored, name), _traced_value(patient, name)]
        for name in names
        if _traced_value(stored, name) != _traced_value(patient, name)
    }
    patient.save()
    audit_record(
        action=AuditAction.PATIENT_UPDATE,
        actor=actor,
        patient=patient,
        object_type="patient",
        object_id=patient.pk,
        client_address=client_address,
        details={"source": "admin", "changes": changes},
    )
    return patient
