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


# Creation defaults of the columns a row may leave out (``None``); the platform identifier is drawn.
_DEFAULTS = {
    "usage_name": "",
    "taux": Patient.Taux.T80.value,
    "dossier_number": "",
    "dossier_state": Patient.DossierState.ACTIVE.value,
}


def patients_import_batch(
    *, rows: list[tuple[int, dict[str, Any]]], source: str, actor: Any = None, actor_label: str = ""
) -> BatchResult:
    """``patients_import_values`` for rows given as dictionaries of model values (the demo's,
    ``importing.normalise``'s): a field left out keeps its stored value (its default on creation)."""
    return patients_import_values(
        rows=[(line, tuple(map(values.get, IMPORTED_COLUMNS))) for line, values in rows],
        source=source,
        actor=actor,
        actor_label=actor_label,
    )


# The order of a row's values given to ``patients_import_values`` (``importing.VALUE_COLUMNS``).
IMPORTED_COLUMNS = ("matricule", *IMPORTED_FIELDS)
_IMPORTED_INDEX = {name: index for index, name in enumerate(IMPORTED_COLUMNS)}
_IDENTIFIER = _IMPORTED_INDEX["platform_identifier"]


@transaction.atomic
def patients_import_values(
    *, rows: list[tuple[int, tuple[Any, ...]]], source: str, actor: Any = None, actor_label: str = ""
) -> BatchResult:
    """Creates or updates the patients of one batch of validated rows, idempotent on the matricule.

    Each row is ``(line, values)``, the values in ``IMPORTED_COLUMNS`` order (``None``: not given,
    the stored value is kept, or the default taken on creation). A new patient is created; an
    existing one is updated where a field changed, with one audit event per updated patient
    carrying the old and new values; an unchanged one is left alone. A matricule repeated in the
    batch is taken from its last line. A row whose platform identifier belongs to another patient
    is rejected. The batch's creations are traced by one event listing the new matricules. Runs
    in one transaction.

    Bulk speed: existing patients and identifier owners are found by joining a temporary table
    of the batch's keys; rows are written as plain tuples (``COPY`` on PostgreSQL,
    ``executemany`` on SQLite), no model instance and no dictionary per row.
    """
    result = BatchResult()
    latest: dict[str, tuple[int, tuple[Any, ...]]] = {}
    for line, values in rows:
        latest[values[0]] = (line, values)  # a matricule repeated in a batch: last line wins
    wanted_ids = {values[_IDENTIFIER] for _, values in latest.values()} - {None, ""}
    # Identifiers for the rows that bring none (the ones of existing patients go unused), checked
    # in the same lookup: one load of the keys, one join per key column.
    # A few more than needed: draws repeat (some 2 in 20,000), and a second lookup costs a round trip.
    needed = len(latest) - len(wanted_ids)
    candidates = _draw_platform_identifiers(needed + needed // 1000 + 8) - wanted_ids
    bulk.load_keys(itertools.chain(latest.keys(), wanted_ids, candidates))
    # A value may be a matricule and an identifier alike: each join keeps its own keys only.
    existing = {row[1]: row for row in bulk.joined("matricule", _STORED_COLUMNS) if row[1] in latest}
    owners: dict[str, str] = dict(bulk.joined("platform_identifier", ["platform_identifier", "matricule"]))
    free = candidates - owners.keys()
    owners = {identifier: matricule for identifier, matricule in owners.items() if identifier in wanted_ids}
    now = timezone.now()
    stamp = bulk.db_datetime(now)
    db_date = bulk.db_date_form()
    default_usage, default_taux = _DEFAULTS["usage_name"], _DEFAULTS["taux"]
    default_dossier, default_state = _DEFAULTS["dossier_number"], _DEFAULTS["dossier_state"]
    to_create: list[list[Any]] = []
    created_lines: list[tuple[int, str]] = []
    updates: list[tuple[Any, ...]] = []
    changed: list[tuple[int | None, dict[str, Any]]] = []
    for matricule, (line, values) in latest.items():
        identifier = values[_IDENTIFIER] or None
        if identifier is not None:
            if owners.get(identifier, matricule) != matricule:
                result.rejected.append(
                    (line, matricule, f"identifiant {identifier} déjà attribué à un autre patient")
                )
                continue
            owners[identifier] = matricule  # claimed by this row for the rest of the batch
        stored = existing.get(matricule)
        if stored is None:
            _, birth_name, usage_name, first_names, birth_date, sex, taux, dossier, _, state = values
            if usage_name is None:
                usage_name = default_usage
            to_create.append(
                [
                    None,  # public id: drawn below for all the batch's new patients at once
                    matricule,
                    birth_name,
                    usage_name,
                    first_names,
                    db_date(birth_date),
                    sex,
                    default_taux if taux is None else taux,
                    default_dossier if dossier is None else dossier,
                    identifier,  # None: drawn below
                    state or default_state,
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
        # ``stored`` is (id, matricule, *IMPORTED_FIELDS), in the order of ``values``.
        changes = {
            name: [_text(old), _text(new)]
            for name, old, new in zip(IMPORTED_FIELDS, stored[2:], values[1:], strict=True)
            if new is not None and _text(new) != _text(old)
        }
        if not changes:
            result.unchanged += 1
            continue
        merged = [
            old if new is None or name not in changes else new
            for name, old, new in zip(IMPORTED_FIELDS, stored[2:], values[1:], strict=True)
        ]
        birth_at = _IMPORTED_INDEX["birth_date"] - 1
        merged[birth_at] = db_date(_as_date(merged[birth_at]))
        names = dict(zip(IMPORTED_FIELDS, merged, strict=True))
        updates.append(
            (
                *merged,
                _fold(names["birth_name"]),
                _fold(names["usage_name"]),
                _fold(names["first_names"]),
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
    bulk.insert_rows(to_create)
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
