"""Writes to the patient index."""

import datetime
import functools
import itertools
import operator
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from esante.audit.catalogue import AuditAction
from esante.audit.services import audit_record, audit_record_many

from . import bulk
from .folding import fold
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


# Names repeat a great deal across a population file; folding each distinct one once keeps
# the import's cost per row low. Bounded, so memory stays constant in the file size.
_fold = functools.lru_cache(maxsize=65_536)(fold)
# Stored values read for an existing patient, to compare with the row and audit the changes.
_STORED_COLUMNS = ("id", "matricule", *IMPORTED_FIELDS)
_UPDATE_COLUMNS = (
    *IMPORTED_FIELDS,
    "birth_name_folded",
    "usage_name_folded",
    "first_names_folded",
    "updated_at",
)


def _draw_platform_identifiers(count: int) -> set[str]:
    """Up to ``count`` random 10-digit platform identifiers starting with 17 (40 random bits
    each, drawn in one system call: a negligible modulo bias)."""
    drawn = os.urandom(5 * count)
    return {f"17{int.from_bytes(drawn[start : start + 5]) % 10**8:08d}" for start in range(0, len(drawn), 5)}


def _new_platform_identifiers(count: int, claimed: set[str], free: set[str]) -> list[str]:
    """``count`` platform identifiers none of which is in use nor in ``claimed`` (the ones the
    batch's rows bring): taken from ``free`` (drawn and checked already), drawn again for the rest."""
    chosen = set(sorted(free - claimed)[:count])
    while len(chosen) < count:
        wanted = _draw_platform_identifiers(count - len(chosen)) - chosen - claimed
        taken = {row[0] for row in bulk.rows_by_key("platform_identifier", wanted, ["platform_identifier"])}
        chosen |= wanted - taken
    return sorted(chosen)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


@transaction.atomic
def patients_import_batch(
    *, rows: list[tuple[int, dict[str, Any]]], source: str, actor: Any = None, actor_label: str = ""
) -> BatchResult:
    """Creates or updates the patients of one batch of validated rows, idempotent on the matricule.

    A new patient is created; an existing one is updated where a field changed, with one audit
    event per updated patient carrying the old and new values; an unchanged one is left alone.
    A matricule repeated in the batch is taken from its last line. A row whose platform
    identifier belongs to another patient is rejected. The batch's creations are traced by one
    event listing the new matricules. Runs in one transaction.

    Bulk speed: existing patients and identifier owners are found by joining a temporary table
    of the batch's keys; rows are written as plain tuples (``COPY`` on PostgreSQL,
    ``executemany`` on SQLite), no model instance per row.
    """
    result = BatchResult()
    latest: dict[str, tuple[int, dict[str, Any]]] = {}
    for line, values in rows:
        latest[values["matricule"]] = (line, values)  # a matricule repeated in a batch: last line wins
    wanted_ids = {v["platform_identifier"] for _, v in latest.values() if v.get("platform_identifier")}
    # Identifiers for the rows that bring none (the ones of existing patients go unused), checked
    # in the same lookup: one load of the keys, one join per key column.
    candidates = _draw_platform_identifiers(len(latest) - len(wanted_ids)) - wanted_ids
    bulk.load_keys(itertools.chain(latest.keys(), wanted_ids, candidates))
    # A value may be a matricule and an identifier alike: each join keeps its own keys only.
    existing = {row[1]: row for row in bulk.joined("matricule", _STORED_COLUMNS) if row[1] in latest}
    owners: dict[str, str] = dict(bulk.joined("platform_identifier", ["platform_identifier", "matricule"]))
    free = candidates - owners.keys()
    owners = {identifier: matricule for identifier, matricule in owners.items() if identifier in wanted_ids}
    now = timezone.now()
    stamp = bulk.db_datetime(now)
    db_date = bulk.db_date_form()
    to_create: list[list[Any]] = []
    created_lines: list[tuple[int, str]] = []
    updates: list[tuple[Any, ...]] = []
    changed: list[tuple[int | None, dict[str, Any]]] = []
    for matricule, (line, values) in latest.items():
        identifier = values.get("platform_identifier")
        if identifier and owners.get(identifier, matricule) != matricule:
            result.rejected.append(
                (line, matricule, f"identifiant {identifier} déjà attribué à un autre patient")
            )
            continue
        if identifier:
            owners[identifier] = matricule  # claimed by this row for the rest of the batch
        stored = existing.get(matricule)
        birth_name, usage_name, first_names = (
            values["birth_name"],
            values.get("usage_name") or "",
            values["first_names"],
        )
        if stored is None:
            to_create.append(
                [
                    None,  # public id: drawn below for all the batch's new patients at once
                    matricule,
                    birth_name,
                    usage_name,
                    first_names,
                    db_date(values["birth_date"]),
                    values["sex"],
                    values.get("taux", Patient.Taux.T80),
                    values.get("dossier_number") or "",
                    identifier,  # None: drawn below
                    values.get("dossier_state") or Patient.DossierState.ACTIVE,
                    "",
                    _fold(birth_name),
                    _fold(usage_name),
                    _fold(first_names),
                    stamp,
                    stamp,
                ]
            )
            created_lines.append((line, matricule))
            continue
        new = {**values, "usage_name": usage_name}
        changes = {
            name: [old, _text(new[name])]
            for name, old in zip(IMPORTED_FIELDS, map(_text, stored[2:]), strict=True)
            if name in new and _text(new[name]) != old
        }
        if not changes:
            result.unchanged += 1
            continue
        merged = {
            name: (new[name] if name in changes else old)
            for name, old in zip(IMPORTED_FIELDS, stored[2:], strict=True)
        }
        merged["birth_date"] = db_date(
            new["birth_date"] if "birth_date" in changes else _as_date(merged["birth_date"])
        )
        updates.append(
            (
                *(merged[name] for name in IMPORTED_FIELDS),
                _fold(merged["birth_name"]),
                _fold(merged["usage_name"]),
                _fold(merged["first_names"]),
                stamp,
                stored[0],
            )
        )
        changed.append((stored[0], {"source": source, "line": line, "changes": changes}))
    for row, public_id in zip(to_create, bulk.new_public_ids(len(to_create)), strict=True):
        row[0] = public_id
    missing = [row for row in to_create if row[9] is None]
    for row, identifier in zip(
        missing, _new_platform_identifiers(len(missing), set(owners), free), strict=True
    ):
        row[9] = identifier
    # In matricule order, which is also birth-date order: both indexes then take the batch's
    # keys in sequence instead of at random pages.
    to_create.sort(key=operator.itemgetter(1))
    bulk.insert_rows([tuple(row) for row in to_create])
    bulk.update_rows(_UPDATE_COLUMNS, updates)
    result.created, result.updated = len(to_create), len(updates)
    audit_record_many(
        action=AuditAction.PATIENT_UPDATE, entries=changed, actor=actor, actor_label=actor_label
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


def _as_date(value: Any) -> datetime.date:
    """A stored date as read back: a ``date`` (PostgreSQL) or its ISO text (SQLite)."""
    return value if isinstance(value, datetime.date) else datetime.date.fromisoformat(value)


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
