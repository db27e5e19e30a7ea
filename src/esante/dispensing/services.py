"""Writes of the dispensing app: marking a prescription dispensed, withdrawing a dispensation,
filing the eDispensation CDA and issuing the certified true copy.

No double dispensing: every attempt names the ``state_version`` of the prescription it was based
on. The transaction locks the prescription row (``SELECT ... FOR UPDATE``; on SQLite the
``BEGIN IMMEDIATE`` write lock) and writes it back with a conditional ``UPDATE ... WHERE
state_version = based_on_version``, and ``(prescription, based_on_version)`` is unique among
dispensations: of two simultaneous attempts one is recorded, the other refused.

Each successful write runs in one transaction whose last statement is its audit event. A refusal
raises ``DispensationRefused`` after its transaction rolled back and records its own refused
audit event in a transaction of its own. The eDispensation CDA and the certified copy's PDF are
produced after the commit, by a job of the queue (``jobs.dispensation_complete``, queued on
commit), never while the prescription is locked and never while the pharmacist waits.
"""

import datetime
import functools
import logging
from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext, ngettext

from esante.access import policy
from esante.access.models import AccessGrant
from esante.access.selectors import RecordNotFound
from esante.accounts.models import Professional
from esante.audit.catalogue import AuditAction
from esante.audit.services import audit_record
from esante.documents.models import Prescription
from esante.documents.selectors import access_document

from . import rules
from .certification import supersede_current_copies
from .jobs import dispensation_complete_after_commit
from .models import CertifiedCopy, Dispensation, DispensationLine
from .refusals import DispensationRefused, refusal_record, refuse, when
from .selectors import (
    LineState,
    last_active_dispensation,
    locks_and_reads_in_one_round_trip,
    prescription_dispensing_state,
    prescription_locked_with_state,
)

logger = logging.getLogger(__name__)


MAX_QUANTITY = 100_000


def dispensing_authorise(pharmacist: Professional, prescription: Prescription) -> tuple[Any, AccessGrant]:
    """The pharmacist holds a current care or emergency access under which the prescription is visible.

    An own-documents access is read-only: it never allows dispensing.
    """
    document = prescription.document
    try:
        patient, grant, _ = access_document(pharmacist, document.patient.public_id, document.public_id)
    except RecordNotFound as error:
        raise refuse("no_access", patient=error.patient) from None
    if not policy.access_allows_dispensing(grant.mode):
        raise refuse("no_access", patient=patient)
    return patient, grant


def dispensing_authorised_by_gate(
    pharmacist: Professional, prescription: Prescription, checked: tuple[Any, AccessGrant]
) -> tuple[Any, AccessGrant]:
    """The access the gate checked a moment ago for this request (``checked`` = its patient and
    grant), reused instead of asking again: it must be this pharmacist's grant on this
    prescription's patient, still current, in a mode that allows dispensing; refused otherwise.

    The gate's check and ``dispensing_authorise`` are the same reads, neither locking the grant:
    a revocation committed after either is seen by the next request alike."""
    patient, grant = checked
    document = prescription.document
    if (
        grant.professional_id != pharmacist.pk
        or grant.patient_id != document.patient_id
        or getattr(patient, "pk", None) != document.patient_id
        or grant.revoked_at is not None
        or grant.expires_at <= timezone.now()
        or not policy.access_allows_dispensing(grant.mode)
    ):
        raise refuse("no_access", patient=document.patient)
    return patient, grant


def _who(dispensation: Dispensation) -> str:
    return f"{dispensation.pharmacist_name} ({dispensation.pharmacy})"


def state_after(remaining: list[int], any_active: bool) -> str:
    if not any_active:
        return Prescription.DispensationState.OPEN
    if all(value == 0 for value in remaining):
        return Prescription.DispensationState.DISPENSED
    return Prescription.DispensationState.PARTIAL


def state_write(prescription: Prescription, *, based_on_version: int, state: str) -> None:
    """The conditional write: it succeeds only on the version the attempt was based on."""
    updated = Prescription.objects.filter(pk=prescription.pk, state_version=based_on_version).update(
        state_version=based_on_version + 1, dispensation_state=state
    )
    if updated != 1:  # cannot happen under the row lock; kept as the database-level guarantee
        raise refuse(
            "stale_version", gettext("La prescription a été modifiée entre-temps. Rechargez la page.")
        )


@functools.cache
def _record_fields() -> tuple[list[Any], list[Any]]:
    """The dispensation's columns and its lines' (their dispensation aside) that
    ``_record_in_one_statement`` writes, in its order."""
    fields = [f for f in Dispensation._meta.concrete_fields if not f.primary_key]
    line_fields = [f for f in DispensationLine._meta.concrete_fields if f.name not in ("id", "dispensation")]
    return fields, line_fields


@functools.lru_cache(maxsize=32)
def _record_sql(line_count: int) -> str:
    """``_record_in_one_statement``'s statement for ``line_count`` lines, built once."""
    quote = connection.ops.quote_name
    fields, line_fields = _record_fields()
    rows = ", ".join("(" + ", ".join(["%s::bigint"] * len(line_fields)) + ")" for _ in range(line_count))
    line_columns = ", ".join(quote(f.column) for f in line_fields)
    # Identifiers come from the models' metadata (quoted), every value is a bound parameter.
    return (
        f"WITH d AS (INSERT INTO {quote(Dispensation._meta.db_table)} "  # noqa: S608
        f"({', '.join(quote(f.column) for f in fields)}) VALUES ({', '.join(['%s'] * len(fields))}) "
        "RETURNING id), "
        f"l AS (INSERT INTO {quote(DispensationLine._meta.db_table)} (dispensation_id, {line_columns}) "
        f"SELECT d.id, v.* FROM d, (VALUES {rows}) AS v({line_columns})), "
        f"u AS (UPDATE {quote(Prescription._meta.db_table)} SET state_version = %s, dispensation_state = %s "
        "WHERE id = %s AND state_version = %s RETURNING 1) "
        "SELECT d.id, (SELECT count(*) FROM u) FROM d"
    )


def _record_in_one_statement(
    locked: Prescription,
    dispensation: Dispensation,
    lines: list[DispensationLine],
    *,
    based_on_version: int,
    state: str,
) -> None:
    """PostgreSQL: the dispensation, its lines and the conditional write of the prescription's
    state (``state_write``) in one statement (one round trip instead of three), with the same
    constraints (the unique ``(prescription, based_on_version)`` raises ``IntegrityError``) and
    the same refusal when the version moved on."""
    fields, line_fields = _record_fields()
    params: list[Any] = [f.get_db_prep_save(f.pre_save(dispensation, True), connection) for f in fields]
    for line in lines:
        params.extend(getattr(line, f.attname) for f in line_fields)
    params.extend([based_on_version + 1, state, locked.pk, based_on_version])
    with connection.cursor() as cursor:
        cursor.execute(_record_sql(len(lines)), params)
        dispensation_id, updated = cursor.fetchone()
    if updated != 1:  # cannot happen under the row lock; kept as the database-level guarantee
        raise refuse(
            "stale_version", gettext("La prescription a été modifiée entre-temps. Rechargez la page.")
        )
    dispensation.pk = dispensation_id
    dispensation._state.adding = False
    dispensation._state.db = connection.alias


@transaction.atomic
def _dispense_in_transaction(
    *,
    prescription: Prescription,
    pharmacist: Professional,
    kind: str,
    lines: Mapping[int, int] | None,
    based_on_version: int,
    pharmacy: str,
    client_address: str | None,
    checked_access: tuple[Any, AccessGrant] | None = None,
    handed_over_at: datetime.datetime | None = None,
) -> Dispensation:
    """Authorise, lock, check, then record: the dispensation's one transaction."""
    if checked_access is not None:
        patient, _grant = dispensing_authorised_by_gate(pharmacist, prescription, checked_access)
    else:
        patient, _grant = dispensing_authorise(pharmacist, prescription)
    # The prescription's row alone is locked (not its document's): its document, already read by
    # the caller, only gives the audit event its public id. What stands is read under the lock
    # (on PostgreSQL in the lock's round trip).
    if locks_and_reads_in_one_round_trip():
        locked, standing = prescription_locked_with_state(prescription)
    else:
        locked = Prescription.objects.select_for_update().get(pk=prescription.pk)
        standing = prescription_dispensing_state(locked)
    locked.document = prescription.document
    now = timezone.now()
    _check_dispensable(
        locked, based_on_version=based_on_version, now=now, patient=patient, first_at=standing.first_at
    )
    delivered = _delivered_quantities(kind, lines, standing.lines, patient=patient)
    return _dispensation_record(
        locked,
        pharmacist=pharmacist,
        patient=patient,
        kind=kind,
        states=standing.lines,
        delivered=delivered,
        based_on_version=based_on_version,
        pharmacy=pharmacy,
        now=now,
        client_address=client_address,
        handed_over_at=handed_over_at,
        current_copy=standing.current_copy,
    )


def _check_dispensable(
    locked: Prescription, *, based_on_version: int, now: Any, patient: Any, first_at: Any
) -> None:
    """Refuses a prescription already dispensed, changed since the attempt's version, past its
    validity (first delivery) or past its series (the next ones, ``first_at`` being the first
    standing delivery's time). ``locked`` is under lock."""
    if locked.dispensation_state == Prescription.DispensationState.DISPENSED:
        last = last_active_dispensation(locked)
        message = (
            gettext("Cette prescription a déjà été dispensée entièrement le %(when)s par %(who)s.")
            % {"when": when(last.dispensed_at), "who": _who(last)}
            if last
            else gettext("Cette prescription a déjà été dispensée entièrement.")
        )
        raise refuse("already_dispensed", message, patient=patient)
    if locked.state_version != based_on_version:
        last = (
            Dispensation.objects.filter(prescription=locked)
            .order_by("-dispensed_at", "-id")
            .select_related("withdrawn_by")
            .first()
        )
        message = (
            gettext(
                "La prescription a été modifiée entre-temps (dernière dispensation le %(when)s par "
                "%(who)s). Rechargez la page et vérifiez les quantités restant à délivrer avant de "
                "recommencer."
            )
            % {"when": when(last.dispensed_at), "who": _who(last)}
            if last is not None
            else gettext(
                "La prescription a été modifiée entre-temps. Rechargez la page et vérifiez les "
                "quantités restant à délivrer avant de recommencer."
            )
        )
        raise refuse("stale_version", message, patient=patient)
    if first_at is None:
        valid_until = rules.prescription_valid_until(locked.prescribed_at)
        if now > valid_until:
            months = rules.validity_months()
            raise refuse(
                "expired",
                ngettext(
                    "Cette prescription n'est plus valable : une prescription est valable %(months)s mois "
                    "à compter de sa date (%(date)s), elle a expiré le %(until)s.",
                    "Cette prescription n'est plus valable : une prescription est valable %(months)s mois "
                    "à compter de sa date (%(date)s), elle a expiré le %(until)s.",
                    months,
                )
                % {"months": months, "date": when(locked.prescribed_at), "until": when(valid_until)},
                patient=patient,
            )
    else:
        series_until = rules.series_valid_until(first_at)
        if now > series_until:
            months = rules.series_months()
            raise refuse(
                "series_expired",
                ngettext(
                    "Les délivrances successives doivent avoir lieu dans les %(months)s mois suivant la "
                    "première délivrance (%(first)s) : ce délai a expiré le %(until)s.",
                    "Les délivrances successives doivent avoir lieu dans les %(months)s mois suivant la "
                    "première délivrance (%(first)s) : ce délai a expiré le %(until)s.",
                    months,
                )
                % {"months": months, "first": when(first_at), "until": when(series_until)},
                patient=patient,
            )


def _delivered_quantities(
    kind: str, lines: Mapping[int, int] | None, states: list[LineState], *, patient: Any
) -> dict[int, int]:
    """What the attempt hands over per prescription line: everything still owed (``full``) or
    the grid's quantities (``partial``), each within what remains owed; refuses anything else."""
    if kind == Dispensation.Kind.FULL:
        delivered = {state.line.pk: state.remaining for state in states}
    elif kind == Dispensation.Kind.PARTIAL:
        asked = dict(lines or {})
        known = {state.line.pk for state in states}
        if set(asked) - known:
            raise refuse("bad_line", patient=patient)
        if any(not isinstance(v, int) or v < 0 or v > MAX_QUANTITY for v in asked.values()):
            raise refuse("bad_quantity", patient=patient)
        delivered = {state.line.pk: asked.get(state.line.pk, 0) for state in states}
        for state in states:
            if delivered[state.line.pk] > state.remaining:
                raise refuse(
                    "over_delivery",
                    gettext(
                        "Quantité trop élevée pour « %(medication)s » : %(asked)s demandée(s), "
                        "%(remaining)s restant à délivrer."
                    )
                    % {
                        "medication": state.line.medication,
                        "asked": delivered[state.line.pk],
                        "remaining": state.remaining,
                    },
                    patient=patient,
                )
    else:
        raise refuse("bad_kind", patient=patient)
    if sum(delivered.values()) == 0:
        raise refuse("nothing_delivered", patient=patient)
    return delivered


def _dispensation_record(
    locked: Prescription,
    *,
    pharmacist: Professional,
    patient: Any,
    kind: str,
    states: list[LineState],
    delivered: dict[int, int],
    based_on_version: int,
    pharmacy: str,
    now: Any,
    client_address: str | None,
    handed_over_at: datetime.datetime | None = None,
    current_copy: bool = True,
) -> Dispensation:
    """Writes the dispensation, its lines and the prescription's new state; traces it last.

    ``current_copy`` false (read under the lock: no copy of the prescription is current) spares
    the statement that supersedes the current copy."""
    remaining = [state.remaining - delivered[state.line.pk] for state in states]
    new_state = state_after(remaining, any_active=True)
    dispensation = Dispensation(
        prescription=locked,
        pharmacist=pharmacist,
        pharmacist_name=f"{pharmacist.first_name} {pharmacist.last_name}"[:200],
        pharmacy=(pharmacy or pharmacist.organisation or "Pharmacie non renseignée")[:200],
        dispensed_at=now,
        kind=Dispensation.Kind.FULL if new_state == Prescription.DispensationState.DISPENSED else kind,
        based_on_version=based_on_version,
    )
    lines = [
        DispensationLine(
            dispensation=dispensation,
            prescription_line=state.line,
            quantity_prescribed=state.prescribed,
            quantity_delivered=delivered[state.line.pk],
            quantity_remaining=left,
        )
        for state, left in zip(states, remaining, strict=True)
    ]
    if connection.vendor == "postgresql":
        _record_in_one_statement(
            locked, dispensation, lines, based_on_version=based_on_version, state=new_state
        )
    else:
        dispensation.save(force_insert=True)
        DispensationLine.objects.bulk_create(lines)
        state_write(locked, based_on_version=based_on_version, state=new_state)
    if current_copy:
        supersede_current_copies(locked, CertifiedCopy.SupersededBecause.DELIVERY, now)
    audit_record(
        action=AuditAction.PRESCRIPTION_DISPENSE,
        actor=pharmacist.user,
        patient=patient,
        object_type="Dispensation",
        object_id=str(dispensation.public_id),
        client_address=client_address,
        details={
            "document": str(locked.document.public_id),
            "kind": dispensation.kind,
            "state": new_state,
            "based_on_version": based_on_version,
            "pharmacy": dispensation.pharmacy,
            "lines": [
                {"position": state.line.position, "delivered": delivered[state.line.pk], "remaining": left}
                for state, left in zip(states, remaining, strict=True)
            ],
            **({"handed_over_at": handed_over_at.isoformat()} if handed_over_at is not None else {}),
        },
    )
    return dispensation


def prescription_mark_dispensed(
    *,
    prescription: Prescription,
    pharmacist: Professional,
    kind: str,
    based_on_version: int,
    lines: Mapping[int, int] | None = None,
    pharmacy: str = "",
    client_address: str | None = None,
    public_url: str = "",
    follow_up: bool = True,
    checked_access: tuple[Any, AccessGrant] | None = None,
    handed_over_at: datetime.datetime | None = None,
) -> Dispensation:
    """Records what a pharmacist handed over against a prescription ("Marquer comme dispensé").

    ``kind`` ``full`` delivers everything still owed; ``partial`` delivers the quantities of the
    dispensation grid, ``lines`` = {prescription line id: quantity delivered now}. When nothing
    remains owed the prescription becomes ``dispensed``, otherwise ``partial``. Needs a
    pharmacist holding a current care or emergency access to the record, a prescription not yet
    fully dispensed whose ``state_version`` is still ``based_on_version``, a prescription within
    its validity (3 months from its date for the first delivery, 6 months from the first delivery
    for the next ones) and quantities within what remains owed.

    Raises ``DispensationRefused`` (and traces the refusal) otherwise. Unless ``follow_up`` is
    false, queues the job that files the eDispensation CDA and issues the certified copy, once
    the caller's transaction (if any) commits: the copy is ready a moment later (the portal says
    it is being prepared), and the sweep completes it if the job is lost.

    ``checked_access`` (patient, grant): what the access gate checked for this request, reused
    instead of reading the record's access again (``dispensing_authorised_by_gate``).
    ``handed_over_at``: when the software says the medicines were handed over (the API's
    ``whenHandedOver``, checked by the caller), recorded in the event; the dispensation is dated
    now.
    """
    object_id = str(prescription.document.public_id)
    details: dict[str, Any] = {"kind": kind, "based_on_version": based_on_version}
    try:
        if not policy.may_dispense(pharmacist.profession):
            raise refuse("not_pharmacist", patient=prescription.document.patient)
        try:
            dispensation = _dispense_in_transaction(
                prescription=prescription,
                pharmacist=pharmacist,
                kind=kind,
                lines=lines,
                based_on_version=based_on_version,
                pharmacy=pharmacy,
                client_address=client_address,
                checked_access=checked_access,
                handed_over_at=handed_over_at,
            )
        except IntegrityError:
            # (prescription, based_on_version) taken by a concurrent attempt the lock did not order.
            raise refuse(
                "stale_version",
                gettext("La prescription vient d'être dispensée par un autre pharmacien. Rechargez la page."),
                patient=prescription.document.patient,
            ) from None
    except DispensationRefused as refusal:
        refusal_record(
            AuditAction.PRESCRIPTION_DISPENSE,
            refusal,
            pharmacist=pharmacist,
            object_id=object_id,
            client_address=client_address,
            details=details,
        )
        raise
    if follow_up:
        dispensation_complete_after_commit(dispensation, client_address=client_address, public_url=public_url)
    return dispensation
