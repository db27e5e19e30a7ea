"""Reads of the dispensing app: what is still owed on a prescription, its dispensations, copies.

The portal callers have already authorised the prescription through
``esante.documents.selectors.access_document``; ``access_prescription`` does both in one step.
"""

import datetime
import functools
import hashlib
import re
import uuid
from dataclasses import dataclass

from django.db import connection
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from esante.access.models import AccessGrant
from esante.access.selectors import RecordNotFound
from esante.accounts.models import Professional
from esante.documents.models import Document, Prescription, PrescriptionLine
from esante.documents.selectors import access_document
from esante.patients.models import Patient

from .models import CertifiedCopy, Dispensation, DispensationLine

# 16 random bytes in base32 without padding: 26 characters of A-Z and 2-7.
_CODE = re.compile(r"[A-Z2-7]{26}")


@dataclass(frozen=True)
class LineState:
    """One prescription line as it stands: prescribed, delivered so far (withdrawals excluded), owed."""

    line: PrescriptionLine
    prescribed: int
    delivered: int

    @property
    def remaining(self) -> int:
        return max(self.prescribed - self.delivered, 0)


def prescription_line_states(prescription: Prescription) -> list[LineState]:
    """Every line of the prescription with what has been delivered on it so far (one query)."""
    active = Q(dispensed__dispensation__withdrawn_at__isnull=True)
    lines = (
        PrescriptionLine.objects.filter(prescription=prescription)
        .annotate(delivered_so_far=Coalesce(Sum("dispensed__quantity_delivered", filter=active), 0))
        .order_by("position")
    )
    return [
        LineState(line=line, prescribed=line.quantity, delivered=line.delivered_so_far)  # type: ignore[attr-defined]
        for line in lines
    ]


@dataclass(frozen=True)
class DispensingState:
    """What a dispensation checks under the prescription's lock, read in one query: the lines as
    they stand, the time of the first standing delivery (None: none stands) and whether a
    certified copy of the prescription is still current."""

    lines: list[LineState]
    first_at: datetime.datetime | None
    current_copy: bool


def prescription_dispensing_state(prescription: Prescription) -> DispensingState:
    """``prescription_line_states``, ``first_active_dispensation_at`` and whether a current
    certified copy exists, in one query: each line carries the two others (subqueries)."""
    active = Q(dispensed__dispensation__withdrawn_at__isnull=True)
    first = (
        Dispensation.objects.filter(prescription=OuterRef("prescription"), withdrawn_at__isnull=True)
        .order_by("dispensed_at")
        .values("dispensed_at")[:1]
    )
    current = CertifiedCopy.objects.filter(
        dispensation__prescription=OuterRef("prescription"), superseded_at__isnull=True
    )
    lines = list(
        PrescriptionLine.objects.filter(prescription=prescription)
        .annotate(
            delivered_so_far=Coalesce(Sum("dispensed__quantity_delivered", filter=active), 0),
            first_delivery_at=Subquery(first),
            current_copy=Exists(current),
        )
        .order_by("position")
    )
    if not lines:  # nothing to carry the subqueries: ask on their own
        return DispensingState(
            [],
            first_active_dispensation_at(prescription),
            CertifiedCopy.objects.filter(
                dispensation__prescription=prescription, superseded_at__isnull=True
            ).exists(),
        )
    states = [
        LineState(line=line, prescribed=line.quantity, delivered=line.delivered_so_far)  # type: ignore[attr-defined]
        for line in lines
    ]
    return DispensingState(states, lines[0].first_delivery_at, lines[0].current_copy)  # type: ignore[attr-defined]


def _columns(model: type) -> list[str]:
    return [field.column for field in model._meta.concrete_fields]  # type: ignore[attr-defined]


@functools.cache
def _locked_state_sql() -> str:
    """The two statements of ``prescription_locked_with_state`` (identifiers from the models'
    metadata, quoted; every value a bound parameter)."""
    quote = connection.ops.quote_name
    prescription = quote(Prescription._meta.db_table)
    line, dispensation = quote(PrescriptionLine._meta.db_table), quote(Dispensation._meta.db_table)
    dispensed, copy = quote(DispensationLine._meta.db_table), quote(CertifiedCopy._meta.db_table)
    locked = ", ".join(quote(column) for column in _columns(Prescription))
    lines = ", ".join(f"l.{quote(column)}" for column in _columns(PrescriptionLine))
    return (
        f"SELECT {locked} FROM {prescription} WHERE id = %s FOR UPDATE; "  # noqa: S608
        f"SELECT {lines}, "
        f"COALESCE((SELECT SUM(dl.quantity_delivered) FROM {dispensed} dl JOIN {dispensation} d "
        "ON d.id = dl.dispensation_id WHERE dl.prescription_line_id = l.id AND d.withdrawn_at IS NULL), 0), "
        f"(SELECT MIN(d.dispensed_at) FROM {dispensation} d WHERE d.prescription_id = %s "
        "AND d.withdrawn_at IS NULL), "
        f"EXISTS (SELECT 1 FROM {copy} c JOIN {dispensation} d ON d.id = c.dispensation_id "
        "WHERE d.prescription_id = %s AND c.superseded_at IS NULL) "
        f"FROM {line} l WHERE l.prescription_id = %s ORDER BY l.position"
    )


def locks_and_reads_in_one_round_trip() -> bool:
    """Whether ``prescription_locked_with_state`` can send its two statements at once: on
    PostgreSQL with client-side parameter binding (Django's default; the simple query protocol
    takes several statements), not with ``server_side_binding``."""
    return connection.vendor == "postgresql" and not connection.settings_dict["OPTIONS"].get(
        "server_side_binding"
    )


def prescription_locked_with_state(prescription: Prescription) -> tuple[Prescription, DispensingState]:
    """The prescription's row locked (``SELECT ... FOR UPDATE``) and ``prescription_dispensing_state``
    read under that lock, in one round trip (``locks_and_reads_in_one_round_trip``): two
    statements sent together. Under READ COMMITTED the second statement takes its snapshot once
    the first has the lock, so it sees every delivery, withdrawal and copy committed before the
    lock was granted, exactly as two round trips would. Raises ``Prescription.DoesNotExist``."""
    with connection.cursor() as cursor:
        pk = prescription.pk
        cursor.execute(_locked_state_sql(), [pk, pk, pk, pk])
        row = cursor.fetchone()
        if row is None:
            raise Prescription.DoesNotExist
        cursor.nextset()
        rows = cursor.fetchall()
    locked = Prescription.from_db(connection.alias, None, row)  # type: ignore[arg-type]
    if not rows:  # nothing to carry the subqueries: ask on their own
        return locked, prescription_dispensing_state(locked)
    width = len(PrescriptionLine._meta.concrete_fields)
    states = []
    for values in rows:
        line = PrescriptionLine.from_db(connection.alias, None, values[:width])  # type: ignore[arg-type]
        states.append(LineState(line=line, prescribed=line.quantity, delivered=values[width]))
    return locked, DispensingState(states, rows[0][width + 1], rows[0][width + 2])


def prescription_line_states_and_first(
    prescription: Prescription,
) -> tuple[list[LineState], datetime.datetime | None]:
    """``prescription_line_states`` and ``first_active_dispensation_at`` in one query."""
    state = prescription_dispensing_state(prescription)
    return state.lines, state.first_at


def prescription_lines_of(documents: QuerySet[Document]) -> QuerySet[PrescriptionLine]:
    """The lines of the prescriptions among ``documents`` (already filtered by access), each
    with ``delivered_so_far`` (withdrawals excluded), newest prescription first: one query."""
    active = Q(dispensed__dispensation__withdrawn_at__isnull=True)
    return (
        PrescriptionLine.objects.filter(prescription__document__in=documents)
        .select_related("prescription__document__patient")
        .annotate(delivered_so_far=Coalesce(Sum("dispensed__quantity_delivered", filter=active), 0))
        .order_by("-prescription__prescribed_at", "-prescription_id", "position")
    )


def prescription_dispensations(
    prescription: Prescription, *, active_only: bool = False
) -> list[Dispensation]:
    """The prescription's dispensations, oldest first, with their lines and certified copies."""
    dispensations = Dispensation.objects.filter(prescription=prescription)
    if active_only:
        dispensations = dispensations.filter(withdrawn_at__isnull=True)
    return list(
        dispensations.select_related("pharmacist", "withdrawn_by")
        .prefetch_related(
            Prefetch(
                "lines", queryset=DispensationLine.objects.select_related("prescription_line").order_by("id")
            ),
            Prefetch("certified_copies", queryset=CertifiedCopy.objects.order_by("-created_at", "-id")),
        )
        .order_by("dispensed_at", "id")
    )


def copy_is_current(dispensation: Dispensation) -> bool:
    """Whether the dispensation has a current certified copy (uses prefetched copies if any)."""
    return any(copy.superseded_at is None for copy in dispensation.certified_copies.all())


def first_active_dispensation_at(prescription: Prescription) -> datetime.datetime | None:
    """When the first delivery still standing (not withdrawn) took place, if any."""
    return (
        Dispensation.objects.filter(prescription=prescription, withdrawn_at__isnull=True)
        .order_by("dispensed_at")
        .values_list("dispensed_at", flat=True)
        .first()
    )


def last_active_dispensation(prescription: Prescription) -> Dispensation | None:
    return (
        Dispensation.objects.filter(prescription=prescription, withdrawn_at__isnull=True)
        .order_by("-dispensed_at", "-id")
        .first()
    )


def access_prescription(
    professional: Professional, patient_public_id: object, document_public_id: object
) -> tuple[Patient, AccessGrant, Document, Prescription]:
    """A medication prescription the professional may read; RecordNotFound for missing and forbidden."""
    patient, grant, document = access_document(professional, patient_public_id, document_public_id)
    prescription = getattr(document, "prescription", None)
    if prescription is None:
        raise RecordNotFound("not_a_prescription", patient)
    return patient, grant, document, prescription


def normalise_code(code: str) -> str | None:
    """A verification code as printed (groups, dashes, spaces, any case) to its canonical form."""
    canonical = re.sub(r"[\s-]", "", code or "").upper()
    return canonical if _CODE.fullmatch(canonical) else None


def code_digest(canonical_code: str) -> str:
    return hashlib.sha256(canonical_code.encode("ascii")).hexdigest()


def certified_copy_by_code(code: str) -> CertifiedCopy | None:
    """The certified copy a verification code belongs to; None for a malformed or forged code."""
    canonical = normalise_code(code)
    if canonical is None:
        return None
    return (
        CertifiedCopy.objects.select_related(
            "dispensation__prescription__document__patient", "dispensation__pharmacist"
        )
        .filter(code_digest=code_digest(canonical))
        .first()
    )


def dispensation_of(prescription: Prescription, public_id: object) -> Dispensation | None:
    try:
        parsed = public_id if isinstance(public_id, uuid.UUID) else uuid.UUID(str(public_id))
    except ValueError:
        return None
    return Dispensation.objects.filter(prescription=prescription, public_id=parsed).first()


def dispensation_subject(public_id: object) -> tuple[str, str] | None:
    """The patient and prescription document ids of a dispensation id (for the access gate to
    decide on), or None when there is no such dispensation."""
    try:
        parsed = public_id if isinstance(public_id, uuid.UUID) else uuid.UUID(str(public_id))
    except ValueError:
        return None
    found = (
        Dispensation.objects.filter(public_id=parsed)
        .values_list("prescription__document__patient__public_id", "prescription__document__public_id")
        .first()
    )
    return (str(found[0]), str(found[1])) if found else None
